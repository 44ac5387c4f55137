// A "stranger" client for sidra.hil.v1.BoardService.
//
// It knows the service only through proto/sidra/hil/v1/board.proto: no
// generated code, no shared helpers, nothing from the Python package. Every
// number it checks is computed here in JavaScript from what the proto's
// comments say (tensor layout, units, MVM formulas, the SplitMix64 /
// Rademacher recipe of PerturbRequest, the error model).
//
//   node stranger_client.mjs HOST:PORT
//
// Prints one JSON object {ok, address, checks: [{name, ok, max_abs_error,
// detail}]} on stdout and exits 0 only when every check passed. Meant for a
// board served with the ideal emulator preset (exact arithmetic, no noise),
// so comparisons use float32 tolerances.

import path from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTO = path.resolve(HERE, "../../proto/sidra/hil/v1/board.proto");

// float32 has a 24-bit significand: relative spacing 2^-23 ~ 1.19e-7.
const F32_EPS = 2 ** -23;

// ---------------------------------------------------------------------------
// Tensor encoding, from the Tensor comment: little-endian, row-major (last
// index fastest), product(shape) x itemsize bytes.

function encodeFloat32(rows2d) {
  const nRows = rows2d.length;
  const nCols = rows2d[0].length;
  const buf = Buffer.alloc(nRows * nCols * 4);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let r = 0; r < nRows; r++) {
    if (rows2d[r].length !== nCols) throw new Error("ragged matrix");
    for (let c = 0; c < nCols; c++) {
      view.setFloat32((r * nCols + c) * 4, rows2d[r][c], /* littleEndian */ true);
    }
  }
  return { dtype: "DTYPE_FLOAT32", shape: [nRows, nCols], data: buf };
}

function decodeFloat32(tensor, what) {
  if (tensor == null) throw new Error(`${what}: missing tensor`);
  if (tensor.dtype !== "DTYPE_FLOAT32") {
    throw new Error(`${what}.dtype: got ${tensor.dtype}, expected DTYPE_FLOAT32`);
  }
  const shape = tensor.shape.map(Number);
  if (shape.length !== 2) throw new Error(`${what}.shape: got [${shape}], expected 2-D`);
  const [nRows, nCols] = shape;
  const data = tensor.data;
  if (data.length !== nRows * nCols * 4) {
    throw new Error(`${what}.data: got ${data.length} bytes, expected ${nRows * nCols * 4}`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = [];
  for (let r = 0; r < nRows; r++) {
    const row = new Array(nCols);
    for (let c = 0; c < nCols; c++) row[c] = view.getFloat32((r * nCols + c) * 4, true);
    out.push(row);
  }
  return out;
}

// Math.fround rounds a double to the nearest float32: what the wire will carry.
const f32 = (x) => Math.fround(x);

// ---------------------------------------------------------------------------
// SplitMix64 and the Rademacher matrix, implemented from the PerturbRequest
// comment only. All arithmetic on unsigned 64-bit integers modulo 2^64.

const MASK64 = (1n << 64n) - 1n;

class SplitMix64 {
  constructor(seed) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }

  next() {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }
}

// Delta[r][c] = s_(r*C + c); stream bit n is bit (n mod 64) of word n div 64
// (words in generation order, each least significant bit first); bit 1 -> +1,
// bit 0 -> -1.
function rademacher(seed, nRows, nCols) {
  const rng = new SplitMix64(seed);
  const total = nRows * nCols;
  const signs = new Array(total);
  let word = 0n;
  for (let n = 0; n < total; n++) {
    if (n % 64 === 0) word = rng.next();
    signs[n] = (word >> BigInt(n % 64)) & 1n ? 1 : -1;
  }
  const delta = [];
  for (let r = 0; r < nRows; r++) delta.push(signs.slice(r * nCols, (r + 1) * nCols));
  return delta;
}

// ---------------------------------------------------------------------------
// Minimal protobuf wire-format reader, to look inside the
// grpc-status-details-bin trailer (google.rpc.Status -> Any -> BadRequest)
// without loading any .proto other than board.proto.

function readVarint(buf, pos) {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error("truncated varint");
    const b = buf[pos++];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

// Returns [{field, wire, value}] where value is a BigInt (varint) or Buffer.
function readFields(buf) {
  const fields = [];
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      let v;
      [v, pos] = readVarint(buf, pos);
      fields.push({ field, wire, value: v });
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      const end = pos + Number(len);
      fields.push({ field, wire, value: buf.subarray(pos, end) });
      pos = end;
    } else if (wire === 1) {
      fields.push({ field, wire, value: buf.subarray(pos, pos + 8) });
      pos += 8;
    } else if (wire === 5) {
      fields.push({ field, wire, value: buf.subarray(pos, pos + 4) });
      pos += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return fields;
}

// google.rpc.Status {int32 code = 1; string message = 2; repeated Any details = 3}
// google.protobuf.Any {string type_url = 1; bytes value = 2}
// google.rpc.BadRequest {repeated FieldViolation field_violations = 1}
// FieldViolation {string field = 1; string description = 2}
function decodeStatusDetails(bin) {
  const status = { code: null, message: "", details: [] };
  for (const f of readFields(bin)) {
    if (f.field === 1 && f.wire === 0) status.code = Number(f.value);
    else if (f.field === 2 && f.wire === 2) status.message = f.value.toString("utf8");
    else if (f.field === 3 && f.wire === 2) {
      const any = { type_url: "", value: Buffer.alloc(0) };
      for (const g of readFields(f.value)) {
        if (g.field === 1 && g.wire === 2) any.type_url = g.value.toString("utf8");
        else if (g.field === 2 && g.wire === 2) any.value = g.value;
      }
      status.details.push(any);
    }
  }
  return status;
}

function decodeBadRequest(buf) {
  const violations = [];
  for (const f of readFields(buf)) {
    if (f.field !== 1 || f.wire !== 2) continue;
    const v = { field: "", description: "" };
    for (const g of readFields(f.value)) {
      if (g.field === 1 && g.wire === 2) v.field = g.value.toString("utf8");
      else if (g.field === 2 && g.wire === 2) v.description = g.value.toString("utf8");
    }
    violations.push(v);
  }
  return violations;
}

// ---------------------------------------------------------------------------
// Reporting.

const checks = [];

function check(name, ok, maxAbsError = null, detail = undefined) {
  const entry = { name, ok: Boolean(ok), max_abs_error: maxAbsError };
  if (detail !== undefined) entry.detail = detail;
  checks.push(entry);
  return entry.ok;
}

// Largest |got - want| and whether every element is within its tolerance
// (tol(want_element, index) -> allowed absolute error).
function compare2d(got, want, tol) {
  if (got.length !== want.length) {
    return { ok: false, maxAbs: null, why: `rows: got ${got.length}, want ${want.length}` };
  }
  let maxAbs = 0;
  let ok = true;
  let worst = null;
  for (let r = 0; r < want.length; r++) {
    if (got[r].length !== want[r].length) {
      return { ok: false, maxAbs: null, why: `row ${r}: got ${got[r].length} cols, want ${want[r].length}` };
    }
    for (let c = 0; c < want[r].length; c++) {
      const err = Math.abs(got[r][c] - want[r][c]);
      if (!(err <= tol(want[r][c], r, c))) {
        ok = false;
        if (worst === null) worst = { r, c, got: got[r][c], want: want[r][c] };
      }
      if (err > maxAbs || Number.isNaN(err)) maxAbs = err;
    }
  }
  return { ok, maxAbs, why: worst ? `first mismatch at [${worst.r}][${worst.c}]: got ${worst.got}, want ${worst.want}` : undefined };
}

// ---------------------------------------------------------------------------
// The service.

function loadService() {
  const def = protoLoader.loadSync(PROTO, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def);
  return pkg.sidra.hil.v1.BoardService;
}

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + 30_000 }, (err, response) => {
      if (err) reject(err);
      else resolve(response);
    });
  });
}

function matVec(voltages, g) {
  // currents[b][j] = sum_i voltages[b][i] * G[i][j], with sum_i |V||G| for tolerances.
  const nRows = g.length;
  const nCols = g[0].length;
  return voltages.map((v) => {
    if (v.length !== nRows) throw new Error("matVec: shape mismatch");
    const out = new Array(nCols).fill(0);
    const mag = new Array(nCols).fill(0);
    for (let i = 0; i < nRows; i++) {
      if (v[i] === 0) continue;
      const gi = g[i];
      for (let j = 0; j < nCols; j++) {
        out[j] += v[i] * gi[j];
        mag[j] += Math.abs(v[i] * gi[j]);
      }
    }
    return { out, mag };
  });
}

function matVecT(voltages, g) {
  // currents[b][i] = sum_j voltages[b][j] * G[i][j]
  const nCols = g[0].length;
  return voltages.map((v) => {
    if (v.length !== nCols) throw new Error("matVecT: shape mismatch");
    const out = g.map((gi) => gi.reduce((acc, gij, j) => acc + v[j] * gij, 0));
    const mag = g.map((gi) => gi.reduce((acc, gij, j) => acc + Math.abs(v[j] * gij), 0));
    return { out, mag };
  });
}

// Deterministic pseudo-random numbers for test data (not the protocol's RNG).
function lcg(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function expectRpcError(client, name, method, request, wantCode, wantField) {
  try {
    await call(client, method, request);
    return check(name, false, null, `${method} succeeded, expected status ${wantCode}`);
  } catch (err) {
    const codeName = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code);
    const details = String(err.details ?? "");
    const ok = err.code === wantCode && details.includes(wantField);
    check(name, ok, null, { code: err.code, code_name: codeName, details });

    // The proto also promises a google.rpc.BadRequest detail naming the field
    // in the grpc-status-details-bin trailer.
    const bins = err.metadata ? err.metadata.get("grpc-status-details-bin") : [];
    if (bins.length === 0) {
      return check(`${name}_bad_request_detail`, false, null, "no grpc-status-details-bin trailer");
    }
    const status = decodeStatusDetails(Buffer.from(bins[0]));
    const bad = status.details.filter((d) => d.type_url.endsWith("/google.rpc.BadRequest"));
    const violations = bad.flatMap((d) => decodeBadRequest(d.value));
    const okDetail =
      status.code === wantCode &&
      violations.length >= 1 &&
      violations.some((v) => v.field === wantField || v.field.startsWith(`${wantField}.`));
    check(`${name}_bad_request_detail`, okDetail, null, {
      status_code: status.code,
      detail_types: status.details.map((d) => d.type_url),
      field_violations: violations,
    });
    return ok && okDetail;
  }
}

async function main() {
  const address = process.argv[2];
  if (!address) {
    console.error("usage: node stranger_client.mjs HOST:PORT");
    process.exit(2);
  }
  const BoardService = loadService();
  const client = new BoardService(address, grpc.credentials.createInsecure());

  try {
    await run(client);
  } catch (err) {
    check("unexpected_exception", false, null, String(err && err.stack ? err.stack : err));
  } finally {
    client.close();
  }

  const ok = checks.length > 0 && checks.every((c) => c.ok);
  process.stdout.write(JSON.stringify({ ok, address, checks }, null, 2) + "\n");
  process.exitCode = ok ? 0 : 1;
}

async function run(client) {
  // --- SplitMix64 / Rademacher test vectors from the PerturbRequest comment.
  {
    const w0 = new SplitMix64(0n).next();
    const w1 = new SplitMix64(1n).next();
    const d0 = rademacher(0n, 1, 8)[0];
    const wantD0 = [1, 1, 1, 1, -1, 1, -1, 1];
    const ok =
      w0 === 0xe220a8397b1dcdafn &&
      w1 === 0x910a2dec89025cc1n &&
      d0.every((s, i) => s === wantD0[i]);
    check("splitmix64_test_vectors", ok, null, {
      seed0_w1: "0x" + w0.toString(16).toUpperCase(),
      seed1_w1: "0x" + w1.toString(16).toUpperCase(),
      seed0_delta_1x8: d0,
    });
  }

  // --- GetBoardInfo
  const before = await call(client, "GetBoardInfo", {});
  const info = before.info;
  const nTiles = info.tile_count;
  const R = info.rows;
  const C = info.cols;
  const gMin = info.g_min_us;
  const gMax = info.g_max_us;
  const vMax = info.read_voltage_max_v;
  check(
    "get_board_info",
    nTiles >= 1 && R >= 1 && C >= 1 && gMin >= 0 && gMax > gMin && vMax > 0 &&
      info.emulated === true && info.emulator_preset === "ideal" &&
      info.dac_bits === 0 && info.adc_bits === 0 &&
      typeof before.stats.mvm_passes === "string",
    null,
    {
      model: info.model, serial_number: info.serial_number, tile_count: nTiles, rows: R, cols: C,
      g_min_us: gMin, g_max_us: gMax, read_voltage_max_v: vMax, dac_bits: info.dac_bits,
      adc_bits: info.adc_bits, emulated: info.emulated, emulator_preset: info.emulator_preset,
      stats: before.stats,
    },
  );

  // --- Program a region that is not at the origin and whose width is not a
  // multiple of 64, so the Rademacher bit stream crosses word boundaries.
  const tile = nTiles > 1 ? 1 : 0;
  const region = { row_offset: 3, col_offset: 5, rows: Math.min(7, R - 3), cols: Math.min(37, C - 5) };
  const amplitude = 1.25; // uS
  const rnd = lcg(12345);
  const targets = [];
  for (let r = 0; r < region.rows; r++) {
    const row = [];
    for (let c = 0; c < region.cols; c++) {
      // Keep targets at least `amplitude` away from both bounds: no clipping on APPLY.
      row.push(f32(gMin + amplitude + rnd() * (gMax - gMin - 2 * amplitude)));
    }
    targets.push(row);
  }
  const prog = await call(client, "Program", {
    tile,
    row_offset: region.row_offset,
    col_offset: region.col_offset,
    conductances: encodeFloat32(targets),
  });
  const nCells = region.rows * region.cols;
  check(
    "program",
    prog.cells_written === String(nCells) && prog.unconverged_cells === "0" &&
      prog.max_error_us <= gMax * 4 * F32_EPS && prog.rms_error_us <= gMax * 4 * F32_EPS,
    prog.max_error_us,
    { response: prog, expected_cells_written: nCells },
  );

  // --- ReadConductance of that region equals the targets.
  const tol = (want) => Math.max(Math.abs(want), gMax) * 2 * F32_EPS;
  const readRegion = async () =>
    decodeFloat32((await call(client, "ReadConductance", { tile, region })).conductances, "conductances");
  {
    const got = await readRegion();
    const cmp = compare2d(got, targets, tol);
    check("read_conductance_region", cmp.ok, cmp.maxAbs, cmp.why);
  }

  // --- Whole tile (unset region): shape [rows, cols]; the region sits at its offsets.
  const readAll = await call(client, "ReadConductance", { tile });
  const gFull = decodeFloat32(readAll.conductances, "conductances");
  {
    const shapeOk = gFull.length === R && gFull[0].length === C;
    const inner = shapeOk
      ? gFull.slice(region.row_offset, region.row_offset + region.rows)
          .map((row) => row.slice(region.col_offset, region.col_offset + region.cols))
      : [];
    const cmp = shapeOk ? compare2d(inner, targets, tol) : { ok: false, maxAbs: null, why: "shape" };
    check("read_conductance_whole_tile", shapeOk && cmp.ok, cmp.maxAbs, {
      shape: readAll.conductances.shape, why: cmp.why,
    });
  }

  // --- MVM: currents[b, j] = sum_i V[b, i] G[i, j].
  const batch = 3;
  const vRows = [];
  for (let b = 0; b < batch; b++) {
    const v = new Array(R).fill(0);
    for (let i = 0; i < R; i++) {
      if (b === 0 && (i < region.row_offset || i >= region.row_offset + region.rows)) continue;
      v[i] = f32((rnd() * 2 - 1) * vMax);
    }
    vRows.push(v);
  }
  vRows[2][0] = f32(vMax); // the limit itself is allowed
  vRows[2][1] = f32(-vMax);
  const currentTol = (mag) => (want) => mag * 8 * F32_EPS + Math.abs(want) * 2 * F32_EPS + 1e-12;
  const mvmPasses0 = BigInt(before.stats.mvm_passes);
  {
    const res = await call(client, "MVM", { tile, voltages: encodeFloat32(vRows) });
    const got = decodeFloat32(res.currents, "currents");
    const exp = matVec(vRows, gFull);
    const want = exp.map((e) => e.out);
    const mag = Math.max(...exp.flatMap((e) => e.mag));
    const cmp = compare2d(got, want, currentTol(mag));
    const shapeOk = got.length === batch && got[0].length === C;
    check("mvm", cmp.ok && shapeOk && res.saturated_outputs === "0", cmp.maxAbs, {
      shape: res.currents.shape, saturated_outputs: res.saturated_outputs, why: cmp.why,
    });
  }

  // --- TransposeMVM: currents[b, i] = sum_j V[b, j] G[i, j].
  const vCols = [];
  for (let b = 0; b < batch; b++) {
    const v = new Array(C).fill(0);
    for (let j = 0; j < C; j++) v[j] = f32((rnd() * 2 - 1) * vMax);
    vCols.push(v);
  }
  {
    const res = await call(client, "TransposeMVM", { tile, voltages: encodeFloat32(vCols) });
    const got = decodeFloat32(res.currents, "currents");
    const exp = matVecT(vCols, gFull);
    const want = exp.map((e) => e.out);
    const mag = Math.max(...exp.flatMap((e) => e.mag));
    const cmp = compare2d(got, want, currentTol(mag));
    const shapeOk = got.length === batch && got[0].length === R;
    check("transpose_mvm", cmp.ok && shapeOk && res.saturated_outputs === "0", cmp.maxAbs, {
      shape: res.currents.shape, saturated_outputs: res.saturated_outputs, why: cmp.why,
    });
  }

  // --- BoardStats.mvm_passes counts one pass per input vector, either direction.
  {
    const after = await call(client, "GetBoardInfo", {});
    const delta = BigInt(after.stats.mvm_passes) - mvmPasses0;
    check("stats_mvm_passes", delta === BigInt(2 * batch), null, {
      before: before.stats.mvm_passes, after: after.stats.mvm_passes, expected_delta: 2 * batch,
    });
  }

  // --- Perturb APPLY: G = target + sign * c * Delta(seed), Delta regenerated here.
  // A seed above 2^63 exercises the full unsigned 64-bit range (sent as a decimal string).
  const seed = 0xdeadbeefcafef00dn;
  const delta = rademacher(seed, region.rows, region.cols);
  const perturbed = (sign) =>
    targets.map((row, r) => row.map((g, c) => g + sign * amplitude * delta[r][c]));
  for (const sign of [-1, +1]) {
    const res = await call(client, "Perturb", {
      tile,
      mode: "PERTURB_MODE_APPLY",
      seed: seed.toString(),
      amplitude_us: amplitude,
      sign,
      region,
    });
    const got = await readRegion();
    const cmp = compare2d(got, perturbed(sign), tol);
    const countsOk = res.cells_written === String(nCells) && res.clipped_cells === "0";
    check(`perturb_apply_sign_${sign > 0 ? "plus" : "minus"}`, cmp.ok && countsOk, cmp.maxAbs, {
      seed: seed.toString(), amplitude_us: amplitude, sign,
      cells_written: res.cells_written, clipped_cells: res.clipped_cells, why: cmp.why,
      plus_cells: delta.flat().filter((s) => s > 0).length, cells: nCells,
    });
  }

  // --- Perturb RESTORE: back to the programmed targets.
  {
    const res = await call(client, "Perturb", { tile, mode: "PERTURB_MODE_RESTORE", region });
    const got = await readRegion();
    const cmp = compare2d(got, targets, tol);
    check("perturb_restore", cmp.ok && res.cells_written === String(nCells), cmp.maxAbs, {
      cells_written: res.cells_written, why: cmp.why,
    });
  }

  // --- Errors: tile out of range -> OUT_OF_RANGE naming `tile`, board unchanged.
  await expectRpcError(
    client, "error_tile_out_of_range", "ReadConductance", { tile: nTiles }, grpc.status.OUT_OF_RANGE, "tile",
  );
  // Malformed request -> INVALID_ARGUMENT naming `voltages` (wrong shape).
  await expectRpcError(
    client, "error_wrong_shape", "MVM",
    { tile, voltages: encodeFloat32([[0, 0, 0]]) }, grpc.status.INVALID_ARGUMENT, "voltages",
  );
  // Out-of-range conductance target -> OUT_OF_RANGE naming `conductances`; board unchanged.
  await expectRpcError(
    client, "error_conductance_out_of_range", "Program",
    { tile, row_offset: region.row_offset, col_offset: region.col_offset, conductances: encodeFloat32([[gMax * 2]]) },
    grpc.status.OUT_OF_RANGE, "conductances",
  );
  {
    const got = await readRegion();
    const cmp = compare2d(got, targets, tol);
    check("rejected_request_leaves_board_unchanged", cmp.ok, cmp.maxAbs, cmp.why);
  }
}

await main();
