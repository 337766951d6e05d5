import fcntl
import os
import threading

from billing.writelock import SqliteWriteLock


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_across_open_files(tmp_path):
    lock = SqliteWriteLock(str(tmp_path / "db"))
    lock.acquire()
    lock.acquire()  # a unit of work inside another, same thread
    other = os.open(tmp_path / "db.writelock", os.O_RDWR)
    try:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            taken = True
        except BlockingIOError:
            taken = False
        assert not taken  # another process (another open file) must wait
        lock.release()
        lock.release()
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the last holder let go
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)


def test_threads_take_turns(tmp_path):
    lock = SqliteWriteLock(str(tmp_path / "db"))
    inside, overlaps = [], []

    def work():
        for _ in range(200):
            lock.acquire()
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(1)
            inside.pop()
            lock.release()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
