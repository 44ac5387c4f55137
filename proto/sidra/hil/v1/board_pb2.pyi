from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT64: _ClassVar[DType]
    DTYPE_INT8: _ClassVar[DType]
    DTYPE_UINT8: _ClassVar[DType]
    DTYPE_INT16: _ClassVar[DType]
    DTYPE_INT32: _ClassVar[DType]
    DTYPE_UINT32: _ClassVar[DType]

class PerturbMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERTURB_MODE_UNSPECIFIED: _ClassVar[PerturbMode]
    PERTURB_MODE_APPLY: _ClassVar[PerturbMode]
    PERTURB_MODE_RESTORE: _ClassVar[PerturbMode]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT64: DType
DTYPE_INT8: DType
DTYPE_UINT8: DType
DTYPE_INT16: DType
DTYPE_INT32: DType
DTYPE_UINT32: DType
PERTURB_MODE_UNSPECIFIED: PerturbMode
PERTURB_MODE_APPLY: PerturbMode
PERTURB_MODE_RESTORE: PerturbMode

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SharedTensor(_message.Message):
    __slots__ = ("region", "offset_bytes", "dtype", "shape")
    REGION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    region: str
    offset_bytes: int
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, region: _Optional[str] = ..., offset_bytes: _Optional[int] = ..., dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("row_offset", "col_offset", "rows", "cols")
    ROW_OFFSET_FIELD_NUMBER: _ClassVar[int]
    COL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    row_offset: int
    col_offset: int
    rows: int
    cols: int
    def __init__(self, row_offset: _Optional[int] = ..., col_offset: _Optional[int] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class OperationCost(_message.Message):
    __slots__ = ("time_ns", "energy_nj")
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_NJ_FIELD_NUMBER: _ClassVar[int]
    time_ns: float
    energy_nj: float
    def __init__(self, time_ns: _Optional[float] = ..., energy_nj: _Optional[float] = ...) -> None: ...

class GetBoardInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBoardInfoResponse(_message.Message):
    __slots__ = ("info", "stats", "instance_id", "limits")
    INFO_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    info: BoardInfo
    stats: BoardStats
    instance_id: str
    limits: ServiceLimits
    def __init__(self, info: _Optional[_Union[BoardInfo, _Mapping]] = ..., stats: _Optional[_Union[BoardStats, _Mapping]] = ..., instance_id: _Optional[str] = ..., limits: _Optional[_Union[ServiceLimits, _Mapping]] = ...) -> None: ...

class ServiceLimits(_message.Message):
    __slots__ = ("max_batch", "max_request_bytes", "max_in_flight", "max_streams", "max_response_bytes")
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_batch: int
    max_request_bytes: int
    max_in_flight: int
    max_streams: int
    max_response_bytes: int
    def __init__(self, max_batch: _Optional[int] = ..., max_request_bytes: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., max_streams: _Optional[int] = ..., max_response_bytes: _Optional[int] = ...) -> None: ...

class BoardInfo(_message.Message):
    __slots__ = ("model", "serial_number", "firmware_version", "tile_count", "rows", "cols", "g_min_us", "g_max_us", "dac_bits", "adc_bits", "read_voltage_max_v", "emulated", "emulator_preset", "profile_json", "timing", "adc_full_scale_ua")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    G_MIN_US_FIELD_NUMBER: _ClassVar[int]
    G_MAX_US_FIELD_NUMBER: _ClassVar[int]
    DAC_BITS_FIELD_NUMBER: _ClassVar[int]
    ADC_BITS_FIELD_NUMBER: _ClassVar[int]
    READ_VOLTAGE_MAX_V_FIELD_NUMBER: _ClassVar[int]
    EMULATED_FIELD_NUMBER: _ClassVar[int]
    EMULATOR_PRESET_FIELD_NUMBER: _ClassVar[int]
    PROFILE_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    ADC_FULL_SCALE_UA_FIELD_NUMBER: _ClassVar[int]
    model: str
    serial_number: str
    firmware_version: str
    tile_count: int
    rows: int
    cols: int
    g_min_us: float
    g_max_us: float
    dac_bits: int
    adc_bits: int
    read_voltage_max_v: float
    emulated: bool
    emulator_preset: str
    profile_json: str
    timing: BoardTiming
    adc_full_scale_ua: float
    def __init__(self, model: _Optional[str] = ..., serial_number: _Optional[str] = ..., firmware_version: _Optional[str] = ..., tile_count: _Optional[int] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., g_min_us: _Optional[float] = ..., g_max_us: _Optional[float] = ..., dac_bits: _Optional[int] = ..., adc_bits: _Optional[int] = ..., read_voltage_max_v: _Optional[float] = ..., emulated: _Optional[bool] = ..., emulator_preset: _Optional[str] = ..., profile_json: _Optional[str] = ..., timing: _Optional[_Union[BoardTiming, _Mapping]] = ..., adc_full_scale_ua: _Optional[float] = ...) -> None: ...

class BoardTiming(_message.Message):
    __slots__ = ("mvm_pass_ns", "write_pass_ns", "verify_read_ns", "host_loss_ns", "board_power_w")
    MVM_PASS_NS_FIELD_NUMBER: _ClassVar[int]
    WRITE_PASS_NS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_READ_NS_FIELD_NUMBER: _ClassVar[int]
    HOST_LOSS_NS_FIELD_NUMBER: _ClassVar[int]
    BOARD_POWER_W_FIELD_NUMBER: _ClassVar[int]
    mvm_pass_ns: float
    write_pass_ns: float
    verify_read_ns: float
    host_loss_ns: float
    board_power_w: float
    def __init__(self, mvm_pass_ns: _Optional[float] = ..., write_pass_ns: _Optional[float] = ..., verify_read_ns: _Optional[float] = ..., host_loss_ns: _Optional[float] = ..., board_power_w: _Optional[float] = ...) -> None: ...

class BoardStats(_message.Message):
    __slots__ = ("total_cost", "mvm_passes", "cell_writes", "clock_s", "max_cell_writes", "link")
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    MVM_PASSES_FIELD_NUMBER: _ClassVar[int]
    CELL_WRITES_FIELD_NUMBER: _ClassVar[int]
    CLOCK_S_FIELD_NUMBER: _ClassVar[int]
    MAX_CELL_WRITES_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    total_cost: OperationCost
    mvm_passes: int
    cell_writes: int
    clock_s: float
    max_cell_writes: int
    link: LinkStats
    def __init__(self, total_cost: _Optional[_Union[OperationCost, _Mapping]] = ..., mvm_passes: _Optional[int] = ..., cell_writes: _Optional[int] = ..., clock_s: _Optional[float] = ..., max_cell_writes: _Optional[int] = ..., link: _Optional[_Union[LinkStats, _Mapping]] = ...) -> None: ...

class LinkDown(_message.Message):
    __slots__ = ("since_unix_s", "reason", "recovery", "link")
    SINCE_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    since_unix_s: float
    reason: str
    recovery: str
    link: LinkStats
    def __init__(self, since_unix_s: _Optional[float] = ..., reason: _Optional[str] = ..., recovery: _Optional[str] = ..., link: _Optional[_Union[LinkStats, _Mapping]] = ...) -> None: ...

class LinkStats(_message.Message):
    __slots__ = ("up", "exchanges", "frames_sent", "frames_received", "bytes_sent", "bytes_received", "crc_errors", "framing_errors", "timeouts", "retries", "naks", "duplicates", "resyncs", "resets", "reconnects", "payload_limit", "payload_changes", "timeout_base_s")
    UP_FIELD_NUMBER: _ClassVar[int]
    EXCHANGES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SENT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    CRC_ERRORS_FIELD_NUMBER: _ClassVar[int]
    FRAMING_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    NAKS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    RESYNCS_FIELD_NUMBER: _ClassVar[int]
    RESETS_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_CHANGES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_BASE_S_FIELD_NUMBER: _ClassVar[int]
    up: bool
    exchanges: int
    frames_sent: int
    frames_received: int
    bytes_sent: int
    bytes_received: int
    crc_errors: int
    framing_errors: int
    timeouts: int
    retries: int
    naks: int
    duplicates: int
    resyncs: int
    resets: int
    reconnects: int
    payload_limit: int
    payload_changes: int
    timeout_base_s: float
    def __init__(self, up: _Optional[bool] = ..., exchanges: _Optional[int] = ..., frames_sent: _Optional[int] = ..., frames_received: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., crc_errors: _Optional[int] = ..., framing_errors: _Optional[int] = ..., timeouts: _Optional[int] = ..., retries: _Optional[int] = ..., naks: _Optional[int] = ..., duplicates: _Optional[int] = ..., resyncs: _Optional[int] = ..., resets: _Optional[int] = ..., reconnects: _Optional[int] = ..., payload_limit: _Optional[int] = ..., payload_changes: _Optional[int] = ..., timeout_base_s: _Optional[float] = ...) -> None: ...

class ProgramRequest(_message.Message):
    __slots__ = ("tile", "row_offset", "col_offset", "conductances")
    TILE_FIELD_NUMBER: _ClassVar[int]
    ROW_OFFSET_FIELD_NUMBER: _ClassVar[int]
    COL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CONDUCTANCES_FIELD_NUMBER: _ClassVar[int]
    tile: int
    row_offset: int
    col_offset: int
    conductances: Tensor
    def __init__(self, tile: _Optional[int] = ..., row_offset: _Optional[int] = ..., col_offset: _Optional[int] = ..., conductances: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class ProgramResponse(_message.Message):
    __slots__ = ("cells_written", "verify_iterations", "pulses", "rms_error_us", "max_error_us", "unconverged_cells", "cost", "cells_over_budget")
    CELLS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    VERIFY_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    PULSES_FIELD_NUMBER: _ClassVar[int]
    RMS_ERROR_US_FIELD_NUMBER: _ClassVar[int]
    MAX_ERROR_US_FIELD_NUMBER: _ClassVar[int]
    UNCONVERGED_CELLS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CELLS_OVER_BUDGET_FIELD_NUMBER: _ClassVar[int]
    cells_written: int
    verify_iterations: int
    pulses: int
    rms_error_us: float
    max_error_us: float
    unconverged_cells: int
    cost: OperationCost
    cells_over_budget: int
    def __init__(self, cells_written: _Optional[int] = ..., verify_iterations: _Optional[int] = ..., pulses: _Optional[int] = ..., rms_error_us: _Optional[float] = ..., max_error_us: _Optional[float] = ..., unconverged_cells: _Optional[int] = ..., cost: _Optional[_Union[OperationCost, _Mapping]] = ..., cells_over_budget: _Optional[int] = ...) -> None: ...

class ReadConductanceRequest(_message.Message):
    __slots__ = ("tile", "region")
    TILE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    tile: int
    region: Region
    def __init__(self, tile: _Optional[int] = ..., region: _Optional[_Union[Region, _Mapping]] = ...) -> None: ...

class ReadConductanceResponse(_message.Message):
    __slots__ = ("conductances", "cost")
    CONDUCTANCES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    conductances: Tensor
    cost: OperationCost
    def __init__(self, conductances: _Optional[_Union[Tensor, _Mapping]] = ..., cost: _Optional[_Union[OperationCost, _Mapping]] = ...) -> None: ...

class MVMRequest(_message.Message):
    __slots__ = ("tile", "voltages", "region", "input_codes", "output_codes", "shared_inputs", "shared_outputs")
    TILE_FIELD_NUMBER: _ClassVar[int]
    VOLTAGES_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INPUT_CODES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CODES_FIELD_NUMBER: _ClassVar[int]
    SHARED_INPUTS_FIELD_NUMBER: _ClassVar[int]
    SHARED_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    tile: int
    voltages: Tensor
    region: Region
    input_codes: Tensor
    output_codes: bool
    shared_inputs: SharedTensor
    shared_outputs: SharedTensor
    def __init__(self, tile: _Optional[int] = ..., voltages: _Optional[_Union[Tensor, _Mapping]] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., input_codes: _Optional[_Union[Tensor, _Mapping]] = ..., output_codes: _Optional[bool] = ..., shared_inputs: _Optional[_Union[SharedTensor, _Mapping]] = ..., shared_outputs: _Optional[_Union[SharedTensor, _Mapping]] = ...) -> None: ...

class MVMResponse(_message.Message):
    __slots__ = ("currents", "saturated_outputs", "cost", "output_codes", "dac_step_v", "adc_step_ua")
    CURRENTS_FIELD_NUMBER: _ClassVar[int]
    SATURATED_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CODES_FIELD_NUMBER: _ClassVar[int]
    DAC_STEP_V_FIELD_NUMBER: _ClassVar[int]
    ADC_STEP_UA_FIELD_NUMBER: _ClassVar[int]
    currents: Tensor
    saturated_outputs: int
    cost: OperationCost
    output_codes: Tensor
    dac_step_v: float
    adc_step_ua: float
    def __init__(self, currents: _Optional[_Union[Tensor, _Mapping]] = ..., saturated_outputs: _Optional[int] = ..., cost: _Optional[_Union[OperationCost, _Mapping]] = ..., output_codes: _Optional[_Union[Tensor, _Mapping]] = ..., dac_step_v: _Optional[float] = ..., adc_step_ua: _Optional[float] = ...) -> None: ...

class TransposeMVMRequest(_message.Message):
    __slots__ = ("tile", "voltages", "region", "input_codes", "output_codes", "shared_inputs", "shared_outputs")
    TILE_FIELD_NUMBER: _ClassVar[int]
    VOLTAGES_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INPUT_CODES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CODES_FIELD_NUMBER: _ClassVar[int]
    SHARED_INPUTS_FIELD_NUMBER: _ClassVar[int]
    SHARED_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    tile: int
    voltages: Tensor
    region: Region
    input_codes: Tensor
    output_codes: bool
    shared_inputs: SharedTensor
    shared_outputs: SharedTensor
    def __init__(self, tile: _Optional[int] = ..., voltages: _Optional[_Union[Tensor, _Mapping]] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., input_codes: _Optional[_Union[Tensor, _Mapping]] = ..., output_codes: _Optional[bool] = ..., shared_inputs: _Optional[_Union[SharedTensor, _Mapping]] = ..., shared_outputs: _Optional[_Union[SharedTensor, _Mapping]] = ...) -> None: ...

class TransposeMVMResponse(_message.Message):
    __slots__ = ("currents", "saturated_outputs", "cost", "output_codes", "dac_step_v", "adc_step_ua")
    CURRENTS_FIELD_NUMBER: _ClassVar[int]
    SATURATED_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CODES_FIELD_NUMBER: _ClassVar[int]
    DAC_STEP_V_FIELD_NUMBER: _ClassVar[int]
    ADC_STEP_UA_FIELD_NUMBER: _ClassVar[int]
    currents: Tensor
    saturated_outputs: int
    cost: OperationCost
    output_codes: Tensor
    dac_step_v: float
    adc_step_ua: float
    def __init__(self, currents: _Optional[_Union[Tensor, _Mapping]] = ..., saturated_outputs: _Optional[int] = ..., cost: _Optional[_Union[OperationCost, _Mapping]] = ..., output_codes: _Optional[_Union[Tensor, _Mapping]] = ..., dac_step_v: _Optional[float] = ..., adc_step_ua: _Optional[float] = ...) -> None: ...

class PerturbRequest(_message.Message):
    __slots__ = ("tile", "mode", "seed", "amplitude_us", "sign", "region")
    TILE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    AMPLITUDE_US_FIELD_NUMBER: _ClassVar[int]
    SIGN_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    tile: int
    mode: PerturbMode
    seed: int
    amplitude_us: float
    sign: int
    region: Region
    def __init__(self, tile: _Optional[int] = ..., mode: _Optional[_Union[PerturbMode, str]] = ..., seed: _Optional[int] = ..., amplitude_us: _Optional[float] = ..., sign: _Optional[int] = ..., region: _Optional[_Union[Region, _Mapping]] = ...) -> None: ...

class PerturbResponse(_message.Message):
    __slots__ = ("cells_written", "clipped_cells", "cost", "cells_over_budget")
    CELLS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CLIPPED_CELLS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CELLS_OVER_BUDGET_FIELD_NUMBER: _ClassVar[int]
    cells_written: int
    clipped_cells: int
    cost: OperationCost
    cells_over_budget: int
    def __init__(self, cells_written: _Optional[int] = ..., clipped_cells: _Optional[int] = ..., cost: _Optional[_Union[OperationCost, _Mapping]] = ..., cells_over_budget: _Optional[int] = ...) -> None: ...

class ReadWriteCountsRequest(_message.Message):
    __slots__ = ("tile", "region")
    TILE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    tile: int
    region: Region
    def __init__(self, tile: _Optional[int] = ..., region: _Optional[_Union[Region, _Mapping]] = ...) -> None: ...

class ReadWriteCountsResponse(_message.Message):
    __slots__ = ("counts", "write_budget")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    WRITE_BUDGET_FIELD_NUMBER: _ClassVar[int]
    counts: Tensor
    write_budget: int
    def __init__(self, counts: _Optional[_Union[Tensor, _Mapping]] = ..., write_budget: _Optional[int] = ...) -> None: ...

class CalibrateRequest(_message.Message):
    __slots__ = ("tile",)
    TILE_FIELD_NUMBER: _ClassVar[int]
    tile: int
    def __init__(self, tile: _Optional[int] = ...) -> None: ...

class CalibrateResponse(_message.Message):
    __slots__ = ("gain", "cost")
    GAIN_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    gain: float
    cost: OperationCost
    def __init__(self, gain: _Optional[float] = ..., cost: _Optional[_Union[OperationCost, _Mapping]] = ...) -> None: ...

class AdvanceClockRequest(_message.Message):
    __slots__ = ("seconds",)
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    def __init__(self, seconds: _Optional[float] = ...) -> None: ...

class AdvanceClockResponse(_message.Message):
    __slots__ = ("clock_s",)
    CLOCK_S_FIELD_NUMBER: _ClassVar[int]
    clock_s: float
    def __init__(self, clock_s: _Optional[float] = ...) -> None: ...

class PerturbationPoint(_message.Message):
    __slots__ = ("seed", "amplitude_us", "sign")
    SEED_FIELD_NUMBER: _ClassVar[int]
    AMPLITUDE_US_FIELD_NUMBER: _ClassVar[int]
    SIGN_FIELD_NUMBER: _ClassVar[int]
    seed: int
    amplitude_us: float
    sign: int
    def __init__(self, seed: _Optional[int] = ..., amplitude_us: _Optional[float] = ..., sign: _Optional[int] = ...) -> None: ...

class PerturbedMVMRequest(_message.Message):
    __slots__ = ("tile", "voltages", "points", "region")
    TILE_FIELD_NUMBER: _ClassVar[int]
    VOLTAGES_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    tile: int
    voltages: Tensor
    points: _containers.RepeatedCompositeFieldContainer[PerturbationPoint]
    region: Region
    def __init__(self, tile: _Optional[int] = ..., voltages: _Optional[_Union[Tensor, _Mapping]] = ..., points: _Optional[_Iterable[_Union[PerturbationPoint, _Mapping]]] = ..., region: _Optional[_Union[Region, _Mapping]] = ...) -> None: ...

class PerturbedMVMResponse(_message.Message):
    __slots__ = ("currents", "saturated_outputs", "cells_written", "clipped_cells", "cells_over_budget", "cost")
    CURRENTS_FIELD_NUMBER: _ClassVar[int]
    SATURATED_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CELLS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CLIPPED_CELLS_FIELD_NUMBER: _ClassVar[int]
    CELLS_OVER_BUDGET_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    currents: Tensor
    saturated_outputs: int
    cells_written: int
    clipped_cells: int
    cells_over_budget: int
    cost: OperationCost
    def __init__(self, currents: _Optional[_Union[Tensor, _Mapping]] = ..., saturated_outputs: _Optional[int] = ..., cells_written: _Optional[int] = ..., clipped_cells: _Optional[int] = ..., cells_over_budget: _Optional[int] = ..., cost: _Optional[_Union[OperationCost, _Mapping]] = ...) -> None: ...

class SequenceStep(_message.Message):
    __slots__ = ("program", "read_conductance", "mvm", "transpose_mvm", "perturb", "perturbed_mvm", "read_write_counts", "calibrate")
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    READ_CONDUCTANCE_FIELD_NUMBER: _ClassVar[int]
    MVM_FIELD_NUMBER: _ClassVar[int]
    TRANSPOSE_MVM_FIELD_NUMBER: _ClassVar[int]
    PERTURB_FIELD_NUMBER: _ClassVar[int]
    PERTURBED_MVM_FIELD_NUMBER: _ClassVar[int]
    READ_WRITE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATE_FIELD_NUMBER: _ClassVar[int]
    program: ProgramRequest
    read_conductance: ReadConductanceRequest
    mvm: MVMRequest
    transpose_mvm: TransposeMVMRequest
    perturb: PerturbRequest
    perturbed_mvm: PerturbedMVMRequest
    read_write_counts: ReadWriteCountsRequest
    calibrate: CalibrateRequest
    def __init__(self, program: _Optional[_Union[ProgramRequest, _Mapping]] = ..., read_conductance: _Optional[_Union[ReadConductanceRequest, _Mapping]] = ..., mvm: _Optional[_Union[MVMRequest, _Mapping]] = ..., transpose_mvm: _Optional[_Union[TransposeMVMRequest, _Mapping]] = ..., perturb: _Optional[_Union[PerturbRequest, _Mapping]] = ..., perturbed_mvm: _Optional[_Union[PerturbedMVMRequest, _Mapping]] = ..., read_write_counts: _Optional[_Union[ReadWriteCountsRequest, _Mapping]] = ..., calibrate: _Optional[_Union[CalibrateRequest, _Mapping]] = ...) -> None: ...

class SequenceStepResult(_message.Message):
    __slots__ = ("program", "read_conductance", "mvm", "transpose_mvm", "perturb", "perturbed_mvm", "read_write_counts", "calibrate")
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    READ_CONDUCTANCE_FIELD_NUMBER: _ClassVar[int]
    MVM_FIELD_NUMBER: _ClassVar[int]
    TRANSPOSE_MVM_FIELD_NUMBER: _ClassVar[int]
    PERTURB_FIELD_NUMBER: _ClassVar[int]
    PERTURBED_MVM_FIELD_NUMBER: _ClassVar[int]
    READ_WRITE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATE_FIELD_NUMBER: _ClassVar[int]
    program: ProgramResponse
    read_conductance: ReadConductanceResponse
    mvm: MVMResponse
    transpose_mvm: TransposeMVMResponse
    perturb: PerturbResponse
    perturbed_mvm: PerturbedMVMResponse
    read_write_counts: ReadWriteCountsResponse
    calibrate: CalibrateResponse
    def __init__(self, program: _Optional[_Union[ProgramResponse, _Mapping]] = ..., read_conductance: _Optional[_Union[ReadConductanceResponse, _Mapping]] = ..., mvm: _Optional[_Union[MVMResponse, _Mapping]] = ..., transpose_mvm: _Optional[_Union[TransposeMVMResponse, _Mapping]] = ..., perturb: _Optional[_Union[PerturbResponse, _Mapping]] = ..., perturbed_mvm: _Optional[_Union[PerturbedMVMResponse, _Mapping]] = ..., read_write_counts: _Optional[_Union[ReadWriteCountsResponse, _Mapping]] = ..., calibrate: _Optional[_Union[CalibrateResponse, _Mapping]] = ...) -> None: ...

class RunSequenceRequest(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[SequenceStep]
    def __init__(self, steps: _Optional[_Iterable[_Union[SequenceStep, _Mapping]]] = ...) -> None: ...

class RunSequenceResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SequenceStepResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SequenceStepResult, _Mapping]]] = ...) -> None: ...
