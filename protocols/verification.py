"""Command verification after ECSS PUS service 1: acceptance, start, progress, completion."""

from enum import IntEnum, StrEnum
from typing import Annotated, Literal

from annotated_types import Ge, MaxLen, MinLen

from lunar_gs.protocols.envelope import Envelope


class Stage(StrEnum):
    ACCEPTANCE = "acceptance"
    START = "start"
    PROGRESS = "progress"
    COMPLETION = "completion"


class FailureCode(IntEnum):
    UNKNOWN_COMMAND = 1
    INVALID_ARGUMENTS = 2
    WRONG_MODE = 3
    BUSY = 4
    EXECUTION_FAILED = 5
    EXPIRED = 6
    """The relay dropped it: it waited out a visibility gap past its expiry."""
    TIMEOUT = 7
    """Ground control gave up waiting (in simulated time, light time allowed for)."""
    DEVICE_FAULT = 8
    ABORTED = 9


_PUS_SUBTYPE = {Stage.ACCEPTANCE: 1, Stage.START: 3, Stage.PROGRESS: 5, Stage.COMPLETION: 7}


class VerificationReport(Envelope):
    schema_name: Literal["verification"] = "verification"
    request_id: Annotated[str, MinLen(1), MaxLen(64)]
    command: Annotated[str, MaxLen(64)]
    stage: Stage
    success: bool = True
    progress_step: Annotated[int, Ge(0)] = 0
    failure_code: FailureCode | None = None
    reason: Annotated[str, MaxLen(1000)] = ""

    @property
    def pus_subtype(self) -> int:
        """PUS service 1 subtype: 1/2 acceptance, 3/4 start, 5/6 progress, 7/8 completion."""
        return _PUS_SUBTYPE[self.stage] + (0 if self.success else 1)

    @property
    def is_final(self) -> bool:
        return not self.success or self.stage is Stage.COMPLETION
