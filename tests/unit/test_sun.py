"""SUN messages of NTAG 424 DNA (geo/sun.py) against NXP AN12196's worked examples, byte for
byte, then properties: every genuine read verifies, every tampered one does not, and the
software tag of mobile_stub speaks the same protocol."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import sun
from mobile_stub.ntag import SoftTag

ZERO_KEY = bytes(16)
PROPERTY = settings(max_examples=200, deadline=None, database=None)

# AN12196, SUN example with encrypted PICC data and a plain MAC (all keys zero, as delivered):
# the URL carried picc_data EF963FF7828658A599F3041510671E88 and cmac 94EED9EE65337086.
AN_PICC_DATA = "EF963FF7828658A599F3041510671E88"
AN_CMAC = "94EED9EE65337086"
AN_PLAIN_PICC = bytes.fromhex("C704DE5F1EACC0403D0000DA5CF60941")
AN_UID = bytes.fromhex("04DE5F1EACC040")
AN_COUNTER = 0x3D  # 61: read counter 3D 00 00, least significant byte first
AN_SV2 = bytes.fromhex("3CC30001008004DE5F1EACC0403D0000")
AN_SESSION_MAC_KEY = bytes.fromhex("3FB5F6E3A807A03D5E3570ACE393776F")
# AN12196, session key generation example: K_SDMFileRead, UID 04C767F2066180, counter 010000.
AN_KDF_KEY = bytes.fromhex("5ACE7E50AB65D5D51FD5BF5A16B8205B")
AN_KDF_UID = bytes.fromhex("04C767F2066180")
AN_KDF_COUNTER = 0x000001  # bytes 01 00 00 in SV2, least significant first
AN_KDF_SESSION_MAC_KEY = bytes.fromhex("3A3E8110E05311F7A3FCF0D969BF2B48")


def test_picc_data_decrypts_as_in_the_note() -> None:
    picc = sun.decrypt_picc_data(ZERO_KEY, bytes.fromhex(AN_PICC_DATA))
    assert picc.uid == AN_UID
    assert picc.counter == AN_COUNTER
    # and the block itself, padding included, is the note's plaintext
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(ZERO_KEY), modes.CBC(bytes(16))).decryptor()
    assert decryptor.update(bytes.fromhex(AN_PICC_DATA)) + decryptor.finalize() == AN_PLAIN_PICC


def test_the_session_mac_key_is_derived_as_in_the_note() -> None:
    assert sun._SV2_PREFIX + AN_UID + AN_COUNTER.to_bytes(3, "little") == AN_SV2
    assert sun.session_mac_key(ZERO_KEY, AN_UID, AN_COUNTER) == AN_SESSION_MAC_KEY
    assert sun.session_mac_key(AN_KDF_KEY, AN_KDF_UID, AN_KDF_COUNTER) == AN_KDF_SESSION_MAC_KEY


def test_the_sdm_mac_is_the_notes_truncated_cmac() -> None:
    assert sun.sdm_mac(ZERO_KEY, AN_UID, AN_COUNTER).hex().upper() == AN_CMAC


def test_the_notes_message_verifies_end_to_end() -> None:
    keys = sun.TagKeys(ZERO_KEY, ZERO_KEY)
    message = sun.verify(keys, AN_UID, AN_PICC_DATA, AN_CMAC)
    assert (message.uid, message.counter) == (AN_UID, AN_COUNTER)
    assert sun.verify(keys, AN_UID, AN_PICC_DATA.lower(), AN_CMAC.lower()) == message


@pytest.mark.parametrize(
    ("picc_data", "cmac", "uid", "reason"),
    [
        (AN_PICC_DATA, "94EED9EE65337087", AN_UID, sun.BAD_MAC),
        (AN_PICC_DATA, AN_CMAC, bytes.fromhex("14DE5F1EACC040"), sun.WRONG_UID),
        ("00" * 16, AN_CMAC, AN_UID, sun.WRONG_TAG_BYTE),
        (AN_PICC_DATA[:-2], AN_CMAC, AN_UID, sun.MALFORMED),
        (AN_PICC_DATA, AN_CMAC + "00", AN_UID, sun.MALFORMED),
        ("G" * 32, AN_CMAC, AN_UID, sun.MALFORMED),
    ],
)
def test_a_wrong_message_is_refused_with_its_reason(
    picc_data: str, cmac: str, uid: bytes, reason: str
) -> None:
    with pytest.raises(sun.SunError) as refused:
        sun.verify(sun.TagKeys(ZERO_KEY, ZERO_KEY), uid, picc_data, cmac)
    assert refused.value.reason == reason


def test_keys_are_per_object_and_per_kind_and_need_the_master_key() -> None:
    master = bytes(range(32))
    one, two = uuid.uuid4(), uuid.uuid4()
    keys = sun.derive_keys(master, sun.TAG, one)
    assert keys == sun.derive_keys(master, sun.TAG, one)  # stable: nothing to store
    assert len(keys.sdm_meta_read_key) == len(keys.sdm_file_read_key) == 16
    assert keys.sdm_meta_read_key != keys.sdm_file_read_key
    # One meta read key for the service (it finds the tag by the UID inside); MAC keys per row.
    other, card = sun.derive_keys(master, sun.TAG, two), sun.derive_keys(master, sun.CARD, one)
    assert other.sdm_meta_read_key == card.sdm_meta_read_key == keys.sdm_meta_read_key
    assert keys.sdm_meta_read_key == sun.meta_read_key(master)
    assert len({keys.sdm_file_read_key, other.sdm_file_read_key, card.sdm_file_read_key}) == 3
    assert keys != sun.derive_keys(bytes(32), sun.TAG, one)
    with pytest.raises(ValueError):
        sun.derive_keys(b"short", sun.TAG, one)


# ---- properties ----------------------------------------------------------------------------

uids = st.binary(min_size=7, max_size=7)
keys16 = st.binary(min_size=16, max_size=16)
counters = st.integers(min_value=0, max_value=sun.MAX_COUNTER - 1)


def _read(meta: bytes, file: bytes, uid: bytes, counter: int) -> tuple[str, str]:
    tag = SoftTag(uid.hex().upper(), meta.hex(), file.hex(), counter=counter)
    url = tag.read()
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    return query["picc_data"], query["cmac"]


@PROPERTY
@given(meta=keys16, file=keys16, uid=uids, counter=counters)
def test_every_read_of_the_software_tag_verifies_with_its_counter(
    meta: bytes, file: bytes, uid: bytes, counter: int
) -> None:
    picc_data, cmac = _read(meta, file, uid, counter)
    message = sun.verify(sun.TagKeys(meta, file), uid, picc_data, cmac)
    assert message.counter == counter + 1 and message.uid == uid


@PROPERTY
@given(
    meta=keys16,
    file=keys16,
    uid=uids,
    counter=counters,
    field=st.sampled_from(["picc_data", "cmac"]),
    position=st.integers(min_value=0, max_value=31),
    flip=st.integers(min_value=1, max_value=15),
)
def test_any_tampered_digit_is_refused(
    meta: bytes, file: bytes, uid: bytes, counter: int, field: str, position: int, flip: int
) -> None:
    picc_data, cmac = _read(meta, file, uid, counter)
    target = picc_data if field == "picc_data" else cmac
    i = position % len(target)
    changed = target[:i] + format(int(target[i], 16) ^ flip, "X") + target[i + 1 :]
    if field == "picc_data":
        picc_data = changed
    else:
        cmac = changed
    with pytest.raises(sun.SunError):
        sun.verify(sun.TagKeys(meta, file), uid, picc_data, cmac)


@PROPERTY
@given(meta=keys16, file=keys16, other=keys16, uid=uids, counter=counters)
def test_another_tags_keys_never_verify_a_read(
    meta: bytes, file: bytes, other: bytes, uid: bytes, counter: int
) -> None:
    picc_data, cmac = _read(meta, file, uid, counter)
    for keys in (sun.TagKeys(other, file), sun.TagKeys(meta, other)):
        if keys != sun.TagKeys(meta, file):
            with pytest.raises(sun.SunError):
                sun.verify(keys, uid, picc_data, cmac)


class _Counter:
    """The service's rule for a tag's counter, as a model: accept only above every accepted."""

    def __init__(self) -> None:
        self.last = -1

    def accept(self, counter: int) -> bool:
        if counter <= self.last:
            return False
        self.last = counter
        return True


@PROPERTY
@given(order=st.permutations(list(range(12))), replays=st.lists(st.integers(0, 11), max_size=12))
def test_a_read_is_accepted_at_most_once_and_never_after_a_later_one(
    order: list[int], replays: list[int]
) -> None:
    tag = SoftTag("04DE5F1EACC040", "00" * 16, "00" * 16)
    reads = [tag.read() for _ in range(12)]
    counter = _Counter()
    accepted: list[int] = []
    for i in [*order, *replays]:
        query = dict(part.split("=") for part in reads[i].split("?")[1].split("&"))
        message = sun.verify(
            sun.TagKeys(ZERO_KEY, ZERO_KEY), AN_UID, query["picc_data"], query["cmac"]
        )
        if counter.accept(message.counter):
            accepted.append(message.counter)
    assert len(accepted) == len(set(accepted))  # no read twice
    assert accepted == sorted(accepted)  # never one older than an accepted one
    assert accepted[0] == order[0] + 1
