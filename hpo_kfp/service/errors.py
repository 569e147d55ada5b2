"""The errors a request can meet, each with its HTTP status and the field it names.

Every refusal reaches the client as one line of JSON, ``{"error": MESSAGE, "field": PATH}``,
where ``PATH`` names the offending part of the request: a JSON path in the body
(``search_space.tunables[1].lower_bound``), a query parameter, a header, or a path segment.
"""

from __future__ import annotations

from hpo_kfp.errors import InputError

__all__ = ["Conflict", "NotFound", "RequestError", "TooLarge", "Unauthorized", "Unavailable"]


class RequestError(InputError):
    """A request breaks a rule (HTTP 400): the message names the field, the rule and the value."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")

    def body(self) -> dict[str, str]:
        """The JSON reply."""
        return {"error": str(self).replace("\n", " "), "field": self.field}


class NotFound(RequestError):
    """The request names an experiment or a trial the store does not hold (HTTP 404)."""

    status = 404


class Conflict(RequestError):
    """The request does not fit the experiment's state: a name already taken, a trial already
    finished otherwise, a budget already spent, a changed search space (HTTP 409)."""

    status = 409


class Unauthorized(RequestError):
    """The request carries no bearer token, or another one than the server's (HTTP 401)."""

    status = 401


class TooLarge(RequestError):
    """The request body is over the server's limit (HTTP 413)."""

    status = 413


class Unavailable(RequestError):
    """The request needs something this server was installed without (HTTP 501)."""

    status = 501
