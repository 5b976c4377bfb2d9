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

* "!cancel-propagates": a task is cancelled while it awaits another task
  (directly, or inside a gather or a timeout block). asyncio cancels the
  awaited task too; our `abort` leaves it running.
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
    # task id -> how many awaits of other tasks are in progress under it
    # (in its own body, or in a gather/timeout block it runs)
    awaiting = {}
    loop_box = []

    def say(text):
        out.append("%d %s" % (int(loop_box[0].time()), text))

    async def body(b, owner):
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
                handles[j] = asyncio.create_task(body(j, j))
            elif op == "await":
                j = step[1]
                task = handles.get(j)
                if task is None:
                    say("%s await t%d = none" % (here, j))
                    continue
                awaiting.setdefault(owner, []).append(task)
                try:
                    value = await task
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():
                        raise  # we are the one being cancelled
                    value = "cancelled"
                finally:
                    awaiting[owner].remove(task)
                say("%s await t%d = %s" % (here, j, value))
            elif op == "abort":
                task = handles.get(step[1])
                if task is not None and not task.done():
                    if any(not t.done() for t in awaiting.get(step[1], [])):
                        out.append("!cancel-propagates")
                    task.cancel()
            elif op == "gather":
                values = await asyncio.gather(*(body(c, owner) for c in step[1]))
                say("%s gather = %s" % (here, ",".join(values)))
            elif op == "timeout":
                limit, c = step[1], step[2]
                try:
                    value = await asyncio.wait_for(body(c, owner), limit)
                except TimeoutError:
                    value = "elapsed"
                say("%s timeout = %s" % (here, value))
            else:
                raise ValueError("unknown step %r" % (step,))
        return "b%d" % b

    async def main():
        loop_box.append(asyncio.get_running_loop())
        await body(0, 0)
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
