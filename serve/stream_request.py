"""POST /streams: a JSON body or a multipart form, read within limits and validated into a `StreamRequest`.

Every problem is a `RequestError` carrying the HTTP status and a one-line message, so nothing a client sends can
end in a traceback. Form fields arrive as text (`-F frames=250`), JSON fields as numbers; both go through the
same checks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request

from svgan.errors import UserError

FIELDS = ("seed", "frames", "seconds", "fps", "aligned", "strict", "identity")
MAX_FPS = 240.0
MAX_SEED = 2**63 - 1
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class RequestError(UserError):
    """A request the server refuses; `status` is its HTTP status code."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StreamRequest:
    seed: int = 0
    frames: int | None = None           # neither frames nor seconds: until the client goes away
    seconds: float | None = None
    fps: float | None = None            # None: the bundle's
    aligned: bool = False               # the identity photo is an aligned face already (no detection)
    strict: bool = False                # refuse (422) a photo the bundle's pSp reconstructs poorly, not just warn
    identity: bytes | None = None       # a photo or a W+ .npy; None: a random identity from `seed`
    identity_name: str = "identity"     # the upload's file name, for messages


async def read_stream_request(request: Request, max_bytes: int) -> StreamRequest:
    """The body of POST /streams: empty, JSON, or a form (multipart with an `identity` file, or urlencoded)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = _content_length(request, max_bytes)
    if length == 0 and not content_type:
        return StreamRequest()
    if content_type == "application/json":
        return parse_fields(_json_object(await request.body()))
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=1, max_fields=len(FIELDS))
        except Exception as e:  # starlette's MultiPartException and parser errors carry a one-line message
            raise RequestError(f"malformed form: {_one_line(e)}", 400) from None
        return parse_fields(await _form_fields(form))
    raise RequestError(f"unsupported content type {content_type!r}: send JSON or a multipart form", 415)


def _content_length(request: Request, max_bytes: int) -> int:
    """Bodies must declare their length (curl does), so a too large one is refused before it is read."""
    header = request.headers.get("content-length")
    if header is None:
        if request.headers.get("transfer-encoding"):
            raise RequestError("send the body with a Content-Length (chunked uploads are not accepted)", 411)
        return 0
    try:
        length = int(header)
    except ValueError:
        raise RequestError(f"bad Content-Length {header!r}", 400) from None
    if length > max_bytes:
        raise RequestError(f"request body of {length} bytes is too large (at most {max_bytes})", 413)
    return length


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(f"malformed JSON: {_one_line(e)}", 400) from None
    if not isinstance(value, dict):
        raise RequestError(f"expected a JSON object, got {type(value).__name__}", 400)
    return value


async def _form_fields(form: Mapping) -> dict:
    fields: dict[str, object] = {}
    for name, value in form.items():
        if isinstance(value, UploadFile):
            fields[name] = (value.filename or name, await value.read())
        else:
            fields[name] = value
    return fields


def parse_fields(fields: Mapping[str, object]) -> StreamRequest:
    """Validates the fields of a request (JSON values, or text from a form) into a `StreamRequest`."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    if "frames" in fields and "seconds" in fields:
        raise RequestError("give frames or seconds, not both")
    fps = _number(fields, "fps", 0.0, MAX_FPS) if "fps" in fields else None
    frames = _integer(fields, "frames", 1, None) if "frames" in fields else None
    seconds = _number(fields, "seconds", 0.0, None) if "seconds" in fields else None
    identity = fields.get("identity")
    if identity is not None and not isinstance(identity, tuple):
        raise RequestError("identity must be an uploaded file (-F identity=@me.jpg), not a value")
    name, data = identity if identity is not None else ("identity", None)
    if data is not None and not data:
        raise RequestError(f"the uploaded identity {name!r} is empty")
    return StreamRequest(seed=_integer(fields, "seed", 0, MAX_SEED) if "seed" in fields else 0,
                         frames=frames, seconds=seconds, fps=fps, aligned=_flag(fields, "aligned"),
                         strict=_flag(fields, "strict"), identity=data,
                         identity_name=name)


def frame_count(request: StreamRequest, fps: float) -> int | None:
    """Frames to stream at `fps` (what `svgan-stream --seconds` computes), None: endless."""
    if request.seconds is not None:
        return max(1, round(request.seconds * fps))
    return request.frames


def _typed(value: object, convert: type) -> object:
    """A form field's string converted (JSON fields come typed); left as it is when it does not convert."""
    if isinstance(value, str):
        try:
            return convert(value.strip())
        except ValueError:
            pass
    return value


def _integer(fields: Mapping[str, object], name: str, low: int, high: int | None) -> int:
    value = _typed(fields[name], int)
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"from {low} to {high}"
        raise RequestError(f"{name} must be an integer {bound}, got {_shown(fields[name])}")
    return value


def _number(fields: Mapping[str, object], name: str, above: float, high: float | None) -> float:
    value = _typed(fields[name], float)
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value <= above or (high is not None and value > high)):
        bound = f"above {above:g}" + ("" if high is None else f" and at most {high:g}")
        raise RequestError(f"{name} must be a number {bound}, got {_shown(fields[name])}")
    return float(value)


def _flag(fields: Mapping[str, object], name: str) -> bool:
    value = fields.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise RequestError(f"{name} must be true or false, got {_shown(value)}")


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, tuple) else "a file"
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
