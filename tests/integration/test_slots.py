"""The per-provider bound on concurrent calls holds across processes (advisory locks)."""

from __future__ import annotations

import threading
import time

from billpay.store.slots import ProviderSlots


def test_concurrent_calls_never_exceed_the_limit_across_two_processes(db):
    # Two ProviderSlots on one database stand for two worker processes: each has its own
    # in-process semaphore, so only the advisory locks keep the total at the limit.
    first, second = ProviderSlots(db, limit=3), ProviderSlots(db, limit=3)
    lock = threading.Lock()
    in_flight = peak = 0
    seen_slots: set[int] = set()

    def call(slots: ProviderSlots) -> None:
        nonlocal in_flight, peak
        with slots("vtpass") as slot:
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
                seen_slots.add(slot)
            time.sleep(0.05)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=call, args=(first if i % 2 else second,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
    assert seen_slots == {0, 1, 2}
    assert first.in_use("vtpass") == 0  # every slot was given back


def test_providers_have_separate_limits(db):
    slots = ProviderSlots(db, limit=1)
    with slots("vtpass"), slots("flutterwave"):
        assert slots.in_use("vtpass") == 1 and slots.in_use("flutterwave") == 1


def test_a_deadline_gives_up_when_every_slot_stays_busy(db):
    from billpay.store.slots import SlotsBusy

    holder, waiter = ProviderSlots(db, limit=1), ProviderSlots(db, limit=1)
    with holder("vtpass"):
        started = time.monotonic()
        try:
            with waiter("vtpass", deadline=time.monotonic() + 0.2):
                raise AssertionError("took a slot that another process holds")
        except SlotsBusy:
            pass
        assert time.monotonic() - started < 5  # gave up, did not wait for the holder
    with waiter("vtpass", deadline=time.monotonic() + 0.2) as slot:  # free again: taken
        assert slot == 0
    assert waiter.in_use("vtpass") == 0


def test_a_share_never_takes_more_than_its_part_of_the_providers_slots(db):
    from billpay.store.slots import ShareOfSlots, SlotsBusy

    pipeline = ProviderSlots(db, limit=4)
    share = ShareOfSlots(ProviderSlots(db, limit=4), share=2, wait_seconds=0.2)
    with share("vtpass"), share("vtpass"):
        assert pipeline.in_use("vtpass") == 2  # the share's calls count against the provider
        try:
            with share("vtpass"):
                raise AssertionError("a third call went past a share of 2")
        except SlotsBusy:
            pass
        with pipeline("vtpass"), pipeline("vtpass"):  # the pipeline still has the rest
            assert pipeline.in_use("vtpass") == 4
    assert pipeline.in_use("vtpass") == 0
