"""Confluent Schema Registry error bodies: ``{"error_code": ..., "message": ...}``.

The codes are Confluent's, so clients that branch on them (confluent-kafka's
``SchemaRegistryError.error_code``) behave as against the real registry.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "compatibility_invalid",
    "incompatible",
    "invalid_schema",
    "invalid_version",
    "schema_not_found",
    "subject_config_not_found",
    "subject_not_found",
    "subject_not_soft_deleted",
    "subject_soft_deleted",
    "version_not_found",
    "version_not_soft_deleted",
    "version_soft_deleted",
]


class ApiError(Exception):
    """An error answer: HTTP status, Confluent ``error_code`` and message."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, object]:
        """The JSON body Confluent sends."""
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> ApiError:
    """40401."""
    return ApiError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: object) -> ApiError:
    """40402."""
    return ApiError(404, 40402, f"Version {version} not found.")


def schema_not_found(detail: str = "Schema not found") -> ApiError:
    """40403."""
    return ApiError(404, 40403, detail)


def subject_soft_deleted(subject: str) -> ApiError:
    """40404: a soft delete of a subject that is already soft-deleted."""
    return ApiError(
        404,
        40404,
        f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently",
    )


def subject_not_soft_deleted(subject: str) -> ApiError:
    """40405: a permanent delete must follow a soft delete."""
    return ApiError(
        404,
        40405,
        f"Subject '{subject}' was not deleted first before being permanently deleted",
    )


def version_soft_deleted(subject: str, version: int) -> ApiError:
    """40406."""
    return ApiError(
        404,
        40406,
        f"Subject '{subject}' Version {version} was soft deleted."
        "Set permanent=true to delete permanently",
    )


def version_not_soft_deleted(subject: str, version: int) -> ApiError:
    """40407."""
    return ApiError(
        404,
        40407,
        f"Subject '{subject}' Version {version} was not deleted first before being "
        "permanently deleted",
    )


def subject_config_not_found(subject: str) -> ApiError:
    """40408."""
    return ApiError(
        404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured"
    )


def invalid_schema(message: str) -> ApiError:
    """42201."""
    return ApiError(422, 42201, message)


def invalid_version(version: str) -> ApiError:
    """42202."""
    return ApiError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def compatibility_invalid() -> ApiError:
    """42203."""
    return ApiError(
        422,
        42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )


def incompatible(subject: str, details: list[str] | tuple[str, ...]) -> ApiError:
    """409 with Confluent's message and the checker's details."""
    return ApiError(
        409,
        409,
        f'Schema being registered is incompatible with an earlier schema for subject "{subject}", '
        f"details: [{', '.join(details)}]",
    )
