"""The trace index's fast decoder (fastavro with the writer schema, header parsed by
confluent-kafka) must give exactly what the codec's deserializer gives."""

from __future__ import annotations

import pytest

from flightrec.contracts.codec import Codec
from flightrec.replay.index import _WriterSchemaDecoder
from flightrec.testing.samples import sample_cot_events


async def test_fast_decoder_agrees_with_the_codec_on_every_kind(offline_codec: Codec) -> None:
    decoder = _WriterSchemaDecoder(offline_codec)
    for event in sample_cot_events():
        data = await offline_codec.encode_cot(event)
        assert decoder.decode(data) == await offline_codec.decode_cot(data) == event


async def test_fast_decoder_leaves_bad_framing_to_the_codec(offline_codec: Codec) -> None:
    data = await offline_codec.encode_cot(sample_cot_events()[0])
    with pytest.raises(Exception) as fast:
        _WriterSchemaDecoder(offline_codec).decode(b"\x07" + data[1:])
    with pytest.raises(type(fast.value)):
        await offline_codec.decode_cot(b"\x07" + data[1:])
