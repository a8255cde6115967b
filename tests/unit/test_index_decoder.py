"""The trace index's fast decoder (fastavro with the writer schema, header parsed by
confluent-kafka) must give exactly what the codec's deserializer gives."""

from __future__ import annotations

import pytest

from flightrec.contracts.codec import Codec
from flightrec.contracts.settings import Settings
from flightrec.replay.index import _WriterSchemaDecoder
from flightrec.testing.offline import offline_registry
from flightrec.testing.samples import sample_cot_events


@pytest.fixture
async def codec() -> Codec:
    settings = Settings()
    codec = Codec(settings, offline_registry(settings))
    await codec.start()
    return codec


async def test_fast_decoder_agrees_with_the_codec_on_every_kind(codec: Codec) -> None:
    decoder = _WriterSchemaDecoder(codec)
    for event in sample_cot_events():
        data = await codec.encode_cot(event)
        assert decoder.decode(data) == await codec.decode_cot(data) == event


async def test_fast_decoder_leaves_bad_framing_to_the_codec(codec: Codec) -> None:
    data = await codec.encode_cot(sample_cot_events()[0])
    with pytest.raises(Exception) as fast:
        _WriterSchemaDecoder(codec).decode(b"\x07" + data[1:])
    with pytest.raises(type(fast.value)):
        await codec.decode_cot(b"\x07" + data[1:])
