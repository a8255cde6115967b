"""HTTP front of the embedded registry: the Confluent Schema Registry REST API.

The subset served is what confluent-kafka's ``SchemaRegistryClient`` and
``AsyncSchemaRegistryClient`` send (register, lookup, versions, ids, metadata
lookup, config, compatibility test, soft and permanent deletes). Answers use
``application/vnd.schemaregistry.v1+json`` and Confluent's error bodies; a body
that is not JSON is a 400, an unknown path a 404, and an unexpected failure a
logged 500 with a JSON body, never a dropped connection.

:func:`start_registry` runs one in-process (tests, the stack); the module
``flightrec.testing.registry`` runs it as a process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from flightrec.testing.registry.errors import ApiError
from flightrec.testing.registry.service import RegistryService
from flightrec.testing.registry.storage import KafkaLog

__all__ = ["CONTENT_TYPE", "RunningRegistry", "build_app", "start_registry"]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

_log = logging.getLogger(__name__)

_SERVICE: web.AppKey[RegistryService] = web.AppKey("registry_service", RegistryService)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type=CONTENT_TYPE.split(";")[0]
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.body(), exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json(
            {"error_code": exc.status, "message": f"HTTP {exc.status} {exc.reason}"}, exc.status
        )
    except Exception:
        _log.exception("unexpected error on %s %s", request.method, request.path)
        return _json({"error_code": 50001, "message": "Error in the backend data store"}, 500)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, 400, f"Request body is not valid JSON: {exc}") from exc


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").strip().lower() == "true"


def _svc(request: web.Request) -> RegistryService:
    return request.app[_SERVICE]


def _subject(request: web.Request) -> str:
    return request.match_info["subject"]


# -- handlers -------------------------------------------------------------------


async def _root(request: web.Request) -> web.Response:
    return _json({})


async def _subjects(request: web.Request) -> web.Response:
    return _json(_svc(request).subjects(request.query))


async def _register(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(await _svc(request).register(_subject(request), body))


async def _lookup(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(_svc(request).lookup(_subject(request), body, deleted=_flag(request, "deleted")))


async def _delete_subject(request: web.Request) -> web.Response:
    svc = _svc(request)
    return _json(await svc.delete_subject(_subject(request), permanent=_flag(request, "permanent")))


async def _versions(request: web.Request) -> web.Response:
    return _json(_svc(request).versions(_subject(request), request.query))


async def _version(request: web.Request) -> web.Response:
    spec = request.match_info["version"]
    deleted = _flag(request, "deleted")
    return _json(_svc(request).get_version(_subject(request), spec, deleted=deleted))


async def _version_schema(request: web.Request) -> web.Response:
    spec = request.match_info["version"]
    deleted = _flag(request, "deleted")
    text = _svc(request).get_version_schema(_subject(request), spec, deleted=deleted)
    return web.Response(status=200, body=text.encode(), content_type=CONTENT_TYPE)


async def _referenced_by(request: web.Request) -> web.Response:
    spec = request.match_info["version"]
    return _json(_svc(request).referenced_by(_subject(request), spec))


async def _delete_version(request: web.Request) -> web.Response:
    spec = request.match_info["version"]
    permanent = _flag(request, "permanent")
    return _json(await _svc(request).delete_version(_subject(request), spec, permanent=permanent))


async def _metadata(request: web.Request) -> web.Response:
    return _json(_svc(request).latest_with_metadata(_subject(request), request.query))


async def _schema_by_id(request: web.Request) -> web.Response:
    return _json(_svc(request).schema_by_id(request.match_info["id"]))


async def _schema_text_by_id(request: web.Request) -> web.Response:
    text = _svc(request).schema_by_id(request.match_info["id"])["schema"]
    return web.Response(status=200, body=str(text).encode(), content_type=CONTENT_TYPE)


async def _id_subjects(request: web.Request) -> web.Response:
    return _json(_svc(request).id_subjects(request.match_info["id"], request.query))


async def _id_versions(request: web.Request) -> web.Response:
    return _json(_svc(request).id_versions(request.match_info["id"], request.query))


async def _schema_by_guid(request: web.Request) -> web.Response:
    return _json(_svc(request).schema_by_guid(request.match_info["guid"]))


async def _schema_types(request: web.Request) -> web.Response:
    return _json(["AVRO"])


async def _get_config(request: web.Request) -> web.Response:
    subject = request.match_info.get("subject")
    default = _flag(request, "defaultToGlobal")
    return _json(_svc(request).get_config(subject, default_to_global=default))


async def _put_config(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(await _svc(request).put_config(request.match_info.get("subject"), body))


async def _delete_config(request: web.Request) -> web.Response:
    return _json(await _svc(request).delete_config(request.match_info.get("subject")))


async def _compat(request: web.Request) -> web.Response:
    body = await _body(request)
    spec = request.match_info.get("version")
    verbose = _flag(request, "verbose")
    return _json(_svc(request).test_compatibility(_subject(request), spec, body, verbose=verbose))


async def _get_mode(request: web.Request) -> web.Response:
    # Only READWRITE exists here (no IMPORT / READONLY modes).
    return _json({"mode": "READWRITE"})


async def _put_mode(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, Mapping) or str(body.get("mode", "")).upper() != "READWRITE":
        raise ApiError(422, 42204, "Invalid mode: this registry supports READWRITE only")
    return _json({"mode": "READWRITE"})


async def _contexts(request: web.Request) -> web.Response:
    return _json(["."])


def build_app(service: RegistryService) -> web.Application:
    """The aiohttp application serving ``service``."""
    app = web.Application(middlewares=[_errors], client_max_size=16 * 1024 * 1024)
    app[_SERVICE] = service
    s = "/subjects/{subject}"
    v = s + "/versions/{version}"
    app.router.add_routes(
        [
            web.get("/", _root),
            web.get("/subjects", _subjects),
            web.post(s, _lookup),
            web.delete(s, _delete_subject),
            web.get(s + "/versions", _versions),
            web.post(s + "/versions", _register),
            web.get(v, _version),
            web.delete(v, _delete_version),
            web.get(v + "/schema", _version_schema),
            web.get(v + "/referencedby", _referenced_by),
            web.get(s + "/metadata", _metadata),
            web.get("/schemas/types", _schema_types),
            web.get("/schemas/ids/{id}", _schema_by_id),
            web.get("/schemas/ids/{id}/schema", _schema_text_by_id),
            web.get("/schemas/ids/{id}/subjects", _id_subjects),
            web.get("/schemas/ids/{id}/versions", _id_versions),
            web.get("/schemas/guids/{guid}", _schema_by_guid),
            web.get("/config", _get_config),
            web.put("/config", _put_config),
            web.delete("/config", _delete_config),
            web.get("/config/{subject}", _get_config),
            web.put("/config/{subject}", _put_config),
            web.delete("/config/{subject}", _delete_config),
            web.post("/compatibility" + v, _compat),
            web.post("/compatibility" + s + "/versions", _compat),
            web.get("/mode", _get_mode),
            web.put("/mode", _put_mode),
            web.get("/mode/{subject}", _get_mode),
            web.put("/mode/{subject}", _put_mode),
            web.get("/contexts", _contexts),
        ]
    )
    return app


@dataclass
class RunningRegistry:
    """A registry serving on ``url`` until :meth:`stop`."""

    url: str
    service: RegistryService
    runner: web.AppRunner

    async def stop(self) -> None:
        """Stop serving, then flush and close the storage."""
        try:
            await self.runner.cleanup()
        finally:
            await self.service.stop()


async def start_registry(
    bootstrap: str,
    port: int,
    topic: str = "_schemas",
    *,
    host: str = "127.0.0.1",
    kafka_config: Mapping[str, Any] | None = None,
    replication_factor: int = -1,
) -> RunningRegistry:
    """Rebuild the state from ``topic`` on ``bootstrap``, then serve on ``host:port``.

    ``port=0`` picks a free port; the chosen one is in ``url``.
    """
    log = KafkaLog(
        bootstrap, topic, kafka_config=kafka_config, replication_factor=replication_factor
    )
    service = RegistryService(log)
    count = await service.start()
    runner = web.AppRunner(build_app(service), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        await service.stop()
        raise
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    url = f"http://{host}:{bound}"
    _log.info("schema registry on %s, state from %s (%d records)", url, topic, count)
    return RunningRegistry(url=url, service=service, runner=runner)
