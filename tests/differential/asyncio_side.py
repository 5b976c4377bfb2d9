"""The asyncio side of tests/differential.rs: runs random task programs on
CPython's own asyncio and prints what each one printed.

Protocol: one program per line on stdin (JSON, see `program_json` in
tests/differential.rs), one transcript per line on stdout: "ok" or "err",
a tab, then the transcript's lines joined by " | ". The Rust side writes a
program, reads its transcript, and so on, through this one process.

Everything asyncio does here is asyncio's own: `asyncio.Runner` (what
`asyncio.run` is built on), `Task`, `create_task`, `gather`, `wait_for`,
`Task.cancel`, `sleep`. Only two things are ours, both in `VirtualLoop`:

* **the clock.** The loop's `time()` is a number we keep. When nothing is
  ready, asyncio's `_run_once` asks its selector to wait until the first
  timer is due; our selector waits for nothing and moves the clock forward
  by exactly that much. Time stands still while anything can run and jumps
  to the next deadline when everything waits: the virtual clock of
  `EventLoop::with_virtual_clock()`. Times are whole seconds held in
  floats, so every sum is exact.
* **ties between timers.** asyncio keeps timers in a heap ordered by
  deadline alone, so timers due at the same instant come out in heap
  order, which is not registration order once a few timers are queued
  (CHAPTERS.md, chapter 4, "Where asyncio differs"). Our timers fire in
  registration order. The loop below breaks ties by a registration
  number, which is the one normalization this side makes; it is named as
  the class `equal-deadlines` in tests/differential.rs.

Markers: a transcript line starting with "!" is not something the program
printed but a note that the program reached a construct where asyncio and
tiny-asyncio differ on purpose (the Rust side stops comparing there):

* "!cancel-propagates": a task is cancelled (or a wait_for gives up on a
  block) while it awaits another task, directly or inside a gather or a
  timeout block. asyncio cancels the awaited task too; our `abort` (and
  our `timeout`, which drops the block) leaves that task running. The
  timeout's check runs at its deadline, just before wait_for's own timer.
* "!nested-cancel": a wait_for gives up on a block in which another
  wait_for is in progress. asyncio's cancellation unwinds through that
  wait_for's `except CancelledError:` handler, which takes iterations and,
  in 3.11, returns the inner result instead if the inner task finished
  meanwhile (the cancellation is swallowed); ours drops the whole block at
  once.
"""

import asyncio
import heapq
import json
import sys
from asyncio import events


class VirtualSelector:
    """A selector with no file descriptors: select(timeout) is the clock."""

    def __init__(self, loop):
        self.loop = loop

    def select(self, timeout=None):
        if timeout is None:
            # Nothing ready and no timer: every task waits forever.
            raise RuntimeError("deadlock: nothing is ready and no timer is set")
        self.loop.now += timeout
        return []

    def close(self):
        pass


class OrderedTimer(events.TimerHandle):
    """A TimerHandle that breaks deadline ties by registration order."""

    __slots__ = ("seq",)

    def __lt__(self, other):
        return (self._when, self.seq) < (other._when, other.seq)


class VirtualLoop(asyncio.BaseEventLoop):
    def __init__(self):
        super().__init__()
        self.now = 0.0
        self.timers_made = 0
        self._selector = VirtualSelector(self)

    def time(self):
        return self.now

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        pass

    def call_at(self, when, callback, *args, context=None):
        # BaseEventLoop.call_at, with OrderedTimer instead of TimerHandle.
        self._check_closed()
        timer = OrderedTimer(when, callback, args, self, context)
        timer.seq = self.timers_made
        self.timers_made += 1
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer


def run_program(prog):
    bodies = prog["bodies"]
    out = []
    handles = {}  # task id -> asyncio.Task
    # Awaits of tasks in progress: (path, task). A path names where a body
    # runs: (task id,) for a task's own body, plus one block id for each
    # gather or timeout block inside it. Cancelling what runs at a path
    # cancels, in asyncio, every task awaited under it.
    awaiting = []
    # The paths of the blocks run by a wait_for now in progress.
    timing_out = []
    loop_box = []

    def say(text):
        out.append("%d %s" % (int(loop_box[0].time()), text))

    def under(path, other):
        return other[: len(path)] == path

    def mark_if_awaiting_under(path):
        """Marks the transcript if cancelling `path` reaches a running task."""
        if any(under(path, p) and not t.done() for p, t in awaiting):
            out.append("!cancel-propagates")

    def mark_at_deadline(path):
        """At a wait_for's deadline: marks what its cancellation will meet."""
        mark_if_awaiting_under(path)
        if any(under(path, p) and p != path for p in timing_out):
            out.append("!nested-cancel")

    async def body(b, path):
        for i, step in enumerate(bodies[b]):
            op = step[0]
            here = "%d.%d" % (b, i)
            if op == "print":
                say(here)
            elif op == "sleep":
                await asyncio.sleep(step[1])
            elif op == "yield":
                await asyncio.sleep(0)
            elif op == "spawn":
                j = step[1]
                handles[j] = asyncio.create_task(body(j, (j,)))
            elif op == "await":
                j = step[1]
                task = handles.get(j)
                if task is None:
                    say("%s await t%d = none" % (here, j))
                    continue
                entry = (path, task)
                awaiting.append(entry)
                try:
                    value = await task
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():
                        raise  # we are the one being cancelled
                    value = "cancelled"
                finally:
                    awaiting.remove(entry)
                say("%s await t%d = %s" % (here, j, value))
            elif op == "abort":
                task = handles.get(step[1])
                if task is not None and not task.done():
                    mark_if_awaiting_under((step[1],))
                    task.cancel()
            elif op == "gather":
                children = [body(c, path + (c,)) for c in step[1]]
                values = await asyncio.gather(*children)
                say("%s gather = %s" % (here, ",".join(values)))
            elif op == "timeout":
                limit, c = step[1], step[2]
                loop = loop_box[0]
                if limit > 0:
                    # Registered just before wait_for's own timer, so it
                    # runs just before it, at the same instant.
                    loop.call_later(limit, mark_at_deadline, path + (c,))
                timing_out.append(path + (c,))
                try:
                    value = await asyncio.wait_for(body(c, path + (c,)), limit)
                except TimeoutError:
                    value = "elapsed"
                finally:
                    timing_out.remove(path + (c,))
                say("%s timeout = %s" % (here, value))
            else:
                raise ValueError("unknown step %r" % (step,))
        return "b%d" % b

    async def main():
        loop_box.append(asyncio.get_running_loop())
        await body(0, (0,))
        say("main returns")

    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        runner.run(main())
    return out


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        try:
            lines = run_program(json.loads(line))
            status = "ok"
        except Exception as error:  # report, keep serving
            lines = ["%s: %s" % (type(error).__name__, error)]
            status = "err"
        sys.stdout.write(status + "\t" + " | ".join(lines) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
