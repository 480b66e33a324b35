// gjs overrides for Afut (libafut-1's typelib): JavaScript on afut's
// futures and tasks.
//
// SPDX-License-Identifier: MIT
//
//   const {Afut} = imports.gi;
//
//   function* cook(order) {           // a generator task: cancellable
//       print(`Started cooking ${order}`);
//       yield Afut.sleep(2);
//       print(`Finished ${order}`);
//       return order;
//   }
//
//   Afut.run(function* () {
//       yield Afut.gather(Afut.createTask(cook, 'Pasta'),
//                         Afut.createTask(cook, 'Pizza'));
//   });
//
// The typelib is afut's C API itself, so a C program linking libafut-1
// shares its futures with JavaScript.  This override adds:
//   - an Afut.Future is a thenable: `await future` gives its value or
//     throws its error; result(), exception(), done(), cancelled(),
//     cancel(msg), setResult(v), setException(e);
//   - tasks (Afut.createTask(fn, ...args)): a generator function runs as
//     a real afut task (afut_stepped_task_new), each `yield future` an
//     await that a cancellation reaches, as in Python; an async function
//     gets its task as first argument, and a cancellation reaches it where
//     it waits through `await task.await(future)`; cancelling it while it
//     awaits anything else throws, loudly, rather than report a
//     cancellation the body never sees;
//   - values and errors cross unchanged: any JS value is a result, and a
//     thrown JS value comes back as itself through every combinator (it
//     rides in the GError, see AFUT_EXCEPTION_ERROR); afut's own errors
//     are GLib.Error (Afut.isCancelled(e), Afut.isTimeout(e)), a group
//     of errors an AggregateError of the originals;
//   - gather, gatherReturnExceptions, waitFor, shield, race, any, wait,
//     timeout (yield*), newQueue(), gio(), run(), runUntilComplete(); the
//     rest is the C API as it is
//     (Afut.TaskGroup.new(task), Afut.Event.new(loop) ...), whose
//     coroutine methods return futures to yield or await.
// A plain Promise cannot be cancelled: a gather (or any combinator) of
// promises refuses cancel() with an error.  C's bool crosses as 0 or 1.

/* exported _init */

function _init() {
    const Afut = this;
    const GLib = imports.gi.GLib;
    const ERROR = Afut.error_quark();
    const State = Afut.FutureState;
    const raw = {
        gather: Afut.gather,
        gather_return_exceptions: Afut.gather_return_exceptions,
        wait_for: Afut.wait_for,
        shield: Afut.shield,
        race: Afut.race,
        any: Afut.any,
        wait: Afut.wait,
        sleep: Afut.sleep,
        then: Afut.Future.prototype.then,
    };

    // ---- values and errors ----

    // A JS value rides in a GValue holding a plain object (gjs's JSObject
    // boxed type), which comes back as the same object.
    const BOX = '__afutValue';
    function box(value) {
        if (value === undefined || value === null)
            return null;
        return {[BOX]: value};
    }
    function unbox(value) {
        if (value !== null && typeof value === 'object' &&
            Object.prototype.hasOwnProperty.call(value, BOX))
            return value[BOX];
        return value === undefined ? null : value;
    }
    function message(e) {
        const head = e instanceof Error ? `${e.name}: ${e.message}` : `${e}`;
        const stack = e instanceof Error && e.stack ? `\n${e.stack}` : '';
        return head + stack.trimEnd();
    }

    function isError(e, code) {
        return e instanceof GLib.Error && e.matches(ERROR, code);
    }
    Afut.isCancelled = e => isError(e, Afut.ErrorCode.CANCELLED);
    Afut.isTimeout = e => isError(e, Afut.ErrorCode.TIMEOUT);
    Afut.cancelledError = msg =>
        new GLib.Error(ERROR, Afut.ErrorCode.CANCELLED, msg || '');

    // The exception of a failed future: the object that rides with its
    // error, an AggregateError of a group's, or the GLib.Error.
    function exceptionOf(future) {
        const error = future.get_error(); // retrieves it
        const value = future.get_error_value();
        if (value !== null)
            return unbox(value);
        const n = future.get_n_sub_errors();
        if (n > 0 && isError(error, Afut.ErrorCode.GROUP)) {
            const subs = [];
            for (let i = 0; i < n; i++) {
                const v = future.get_sub_error_value(i);
                subs.push(v !== null ? unbox(v) : future.get_sub_error(i));
            }
            return new AggregateError(subs, error.message.split('\n')[0]);
        }
        return error;
    }
    function exceptionOfError(error, value) {
        return value !== null ? unbox(value) : error;
    }

    // [value, exception] of a done future; a gather's value is the list
    // of its items' (each its value, or its exception).
    function outcome(future) {
        const state = future.get_state();
        if (state === State.PENDING)
            return [null, new Error('Result is not set.')];
        if (state !== State.DONE)
            return [null, exceptionOf(future)];
        if (future._afutFinish) {
            // Afut.gio(): the call's _finish, once.
            if (!future._afutOutcome) {
                try {
                    future._afutOutcome = [future._afutFinish(future.get_value()), null];
                } catch (e) {
                    future._afutOutcome = [null, e];
                }
            }
            return future._afutOutcome;
        }
        const source = future.get_value_source();
        if (source.is_gather()) {
            const n = Afut.gather_get_n_items(source);
            const items = [];
            for (let i = 0; i < n; i++) {
                const [v, e] = outcome(Afut.gather_get_item(source, i));
                items.push(e === null ? v : e);
            }
            return [items, null];
        }
        return [unbox(future.get_value()), null];
    }

    function fail(future, e) {
        if (e instanceof GLib.Error)
            return future.fail_error(e);
        return future.fail_value(box(e), message(e));
    }

    // ---- the loop ----

    let attached = null;

    function envFlags() {
        return GLib.getenv('AFUT_CLOCK') === 'virtual'
            ? Afut.LoopFlags.VIRTUAL_CLOCK : Afut.LoopFlags.NONE;
    }

    // This thread's afut loop on a main context (the thread-default one),
    // pushed as the thread-default afut loop: GTK's or any GLib main loop
    // runs it.
    Afut.attach = function (context = null, virtualClock = null) {
        if (attached !== null)
            throw new Error('this thread has an afut loop already');
        if (context === null)
            context = GLib.MainContext.ref_thread_default();
        let flags = envFlags();
        if (virtualClock !== null)
            flags = virtualClock ? Afut.LoopFlags.VIRTUAL_CLOCK : Afut.LoopFlags.NONE;
        attached = Afut.glib_loop_new(context, flags);
        attached.push_thread_default();
        return attached;
    };

    // asyncio.run()'s ending for the loop attach() made.
    Afut.detach = function () {
        if (attached === null)
            return;
        const loop = attached;
        attached = null;
        try {
            loop.shutdown();
        } finally {
            loop.pop_thread_default();
        }
    };

    Afut.isAttached = () => attached !== null;
    Afut.getEventLoop = () =>
        Afut.loop_get_running() || Afut.loop_get_thread_default() || Afut.attach();

    // ---- futures ----

    const proto = Afut.Future.prototype;

    proto.then = function (onFulfilled, onRejected) {
        const promise = new Promise((resolve, reject) => {
            this.add_done_callback(() => {
                const [v, e] = outcome(this);
                if (e === null)
                    resolve(v);
                else
                    reject(e);
            });
        });
        return promise.then(onFulfilled, onRejected);
    };
    proto.result = function () {
        const [v, e] = outcome(this);
        if (e !== null)
            throw e;
        return v;
    };
    proto.exception = function () {
        const state = this.get_state();
        if (state === State.PENDING)
            throw new Error('Exception is not set.');
        if (state === State.DONE)
            return null;
        const e = exceptionOf(this);
        if (state === State.CANCELLED)
            throw e;
        return e;
    };
    proto.done = function () {
        return this.is_done() !== 0;
    };
    proto.cancelled = function () {
        return this.is_cancelled() !== 0;
    };
    const rawCancel = proto.cancel;
    proto.cancel = function (msg = null) {
        if (this._refusesCancel)
            throw new Error(this._refusesCancel);
        return rawCancel.call(this, msg) !== 0;
    };
    proto.setResult = function (value) {
        if (this.is_done())
            throw new Error('invalid state');
        this.resolve_value(box(value));
    };
    proto.setException = function (e) {
        if (this.is_done())
            throw new Error('invalid state');
        fail(this, e);
    };
    proto.getName = function () {
        return this.get_task().get_name();
    };
    proto.setName = function (name) {
        this.get_task().set_name(`${name}`);
    };
    proto.cancelling = function () {
        return this.get_task().cancelling();
    };
    proto.uncancel = function () {
        return this.get_task().uncancel();
    };
    proto.describe = function () {
        return this.get_task().to_string();
    };

    // A future for a JS promise: its cancellation is refused (a promise
    // cannot be stopped), with a warning naming the way out.
    function promiseFuture(promise) {
        const future = Afut.Future.new_with_cancel(Afut.getEventLoop(), () => {
            logError(new Error('Afut: a plain Promise cannot be cancelled: ' +
                'run the work as a task (Afut.createTask) instead'));
            return false;
        });
        Promise.resolve(promise).then(value => {
            if (!future.is_done())
                future.resolve_value(box(value));
        }, e => {
            if (!future.is_done())
                fail(future, e);
        });
        return future;
    }

    // A future for a future, a task, a promise or any value.
    Afut.ensureFuture = function (aw) {
        if (aw instanceof Afut.Future)
            return aw;
        if (aw !== null && typeof aw === 'object' && typeof aw.then === 'function')
            return promiseFuture(aw);
        const future = Afut.Future.new(Afut.getEventLoop());
        future.resolve_value(box(aw));
        return future;
    };

    // ---- tasks ----

    function isGeneratorFunction(fn) {
        return typeof fn === 'function' &&
            Object.getPrototypeOf(fn) === Object.getPrototypeOf(function* () {});
    }

    function sameError(future, error) {
        const state = future.get_state();
        if (state === State.PENDING || state === State.DONE)
            return false;
        const own = future.get_error();
        return own.domain === error.domain && own.code === error.code &&
            own.message === error.message;
    }

    function throwInto(task, e) {
        if (e instanceof GLib.Error)
            task.throw_error(e);
        else
            task.throw_value(box(e), message(e));
    }

    // A generator as a real afut task: its `yield future` is an await
    // that a cancellation reaches, as Python's Task.__step does.
    function generatorTask(loop, name, gen) {
        let waiting = null;
        return Afut.stepped_task_new(loop, name, task => {
            let r;
            try {
                const caught = task.caught();
                if (caught === null) {
                    // Its value (or what Afut.gio()'s _finish throws).
                    const [value, e] = waiting === null ? [null, null] : outcome(waiting);
                    waiting = null;
                    r = e === null ? gen.next(value) : gen.throw(e);
                } else {
                    // The future's own failure, read from it (its object,
                    // its group); else the task's own cancellation.
                    const e = waiting !== null && sameError(waiting, caught)
                        ? exceptionOf(waiting)
                        : exceptionOfError(caught, task.get_caught_value());
                    waiting = null;
                    r = gen.throw(e);
                }
            } catch (e) {
                throwInto(task, e);
                return null;
            }
            if (r.done) {
                task.return_value(box(r.value));
                return null;
            }
            waiting = r.value === undefined || r.value === null
                ? raw.sleep(0) : Afut.ensureFuture(r.value);
            return waiting;
        });
    }

    // cancel() from the override's own code, which runs inside C's
    // cancel: a refusal (a plain promise's) is a false, not a throw.
    function tryCancel(future, msg) {
        try {
            return future.cancel(msg);
        } catch (e) {
            logError(e);
            return false;
        }
    }

    // An async function as a task: a stepped task awaiting the future of
    // its body, whose cancel reaches the body where it waits through
    // task.await(), and is refused (loudly) anywhere else.
    class Task {
        constructor() {
            this.waiting = null;
            this.mustCancel = false;
            this.message = null;
            this.future = null;
        }

        // The await a cancellation reaches.
        await(aw) {
            const future = Afut.ensureFuture(aw);
            if (this.mustCancel) {
                this.mustCancel = false;
                tryCancel(future, this.message);
            }
            this.waiting = future;
            return new Promise((resolve, reject) => {
                future.add_done_callback(() => {
                    if (this.waiting === future)
                        this.waiting = null;
                    const [v, e] = outcome(future);
                    if (e === null)
                        resolve(v);
                    else
                        reject(e);
                });
            });
        }

        cancel(msg = null) {
            return this.future.cancel(msg);
        }
    }

    function asyncTask(loop, name, fn, args) {
        const t = new Task();
        let body = null;
        const future = Afut.stepped_task_new(loop, name, task => {
            if (body === null) {
                body = Afut.Future.new_with_cancel(loop, (f, msg) => {
                    t.message = msg;
                    if (t.waiting !== null && tryCancel(t.waiting, msg))
                        return true;
                    logError(new Error(`Afut: task '${task.get_name()}' cannot be ` +
                        'cancelled where it waits (a plain await): await through ' +
                        'task.await(), or make it a generator task'));
                    return false;
                });
                let promise;
                try {
                    promise = fn(t, ...args);
                } catch (e) {
                    promise = Promise.reject(e);
                }
                Promise.resolve(promise).then(value => {
                    if (!body.is_done())
                        body.resolve_value(box(value));
                }, e => {
                    if (!body.is_done())
                        fail(body, e);
                });
                return body;
            }
            const [v, e] = outcome(body);
            if (e === null)
                task.return_value(box(v));
            else
                throwInto(task, e);
            return null;
        });
        t.future = future;
        // cancel() on the task's own wrapper fails loudly where the body
        // cannot see it.
        const rawTaskCancel = future.cancel;
        future.cancel = function (msg = null) {
            if (body !== null && !body.is_done() && t.waiting === null)
                throw new Error(`Afut: task '${future.getName()}' awaits a plain ` +
                    'promise or future, where a cancellation cannot reach it: ' +
                    'await through task.await(), or make it a generator task');
            return rawTaskCancel.call(this, msg);
        };
        return future;
    }

    // asyncio.create_task(): fn (a generator function, or an async
    // function, which gets its task first) runs as an afut task.
    Afut.createTask = function (fn, ...args) {
        let name = null;
        if (fn !== null && typeof fn === 'object' && !(fn instanceof Function)) {
            ({name = null} = fn);
            fn = fn.fn;
        }
        const loop = Afut.getEventLoop();
        if (isGeneratorFunction(fn))
            return generatorTask(loop, name, fn(...args));
        if (typeof fn !== 'function')
            throw new TypeError('Afut.createTask takes a function');
        return asyncTask(loop, name, fn, args);
    };

    Afut.currentTask = function () {
        const task = Afut.task_get_current(null);
        return task === null ? null : task.get_future();
    };

    // ---- combinators ----

    function futures(aws) {
        if (aws.length === 1 && Array.isArray(aws[0]))
            aws = aws[0];
        let plain = false;
        const list = aws.map(aw => {
            if (!(aw instanceof Afut.Future))
                plain = true;
            return Afut.ensureFuture(aw);
        });
        return [list, plain];
    }
    function refuseIfPlain(future, plain) {
        if (plain)
            future._refusesCancel = 'Afut: this combinator has a plain Promise ' +
                'among its inputs, which a cancellation cannot reach: make each a ' +
                'task (Afut.createTask)';
        return future;
    }
    function timeoutOf(t) {
        return t === null || t === undefined ? Infinity : t;
    }

    Afut.sleep = (delay, value) => {
        const f = Afut.getEventLoop().sleep(delay);
        if (value === undefined)
            return f;
        return generatorTask(Afut.getEventLoop(), null, (function* () {
            yield f;
            return value;
        })());
    };
    Afut.gather = (...aws) => {
        const [list, plain] = futures(aws);
        Afut.getEventLoop();
        return refuseIfPlain(raw.gather(list), plain);
    };
    Afut.gatherReturnExceptions = (...aws) => {
        const [list, plain] = futures(aws);
        Afut.getEventLoop();
        return refuseIfPlain(raw.gather_return_exceptions(list), plain);
    };
    Afut.gather_return_exceptions = Afut.gatherReturnExceptions;
    Afut.waitFor = (aw, timeout) => {
        const [list, plain] = futures([aw]);
        return refuseIfPlain(raw.wait_for(list[0], timeoutOf(timeout)), plain);
    };
    Afut.wait_for = Afut.waitFor;
    Afut.shield = aw => raw.shield(Afut.ensureFuture(aw));
    Afut.race = (...aws) => {
        const [list, plain] = futures(aws);
        return refuseIfPlain(raw.race(list), plain);
    };
    Afut.any = (...aws) => {
        const [list, plain] = futures(aws);
        return refuseIfPlain(raw.any(list), plain);
    };

    // asyncio.wait(): a task giving [done, pending] arrays of the futures.
    Afut.wait = function (aws, {timeout = null, returnWhen = Afut.WaitMode.ALL_COMPLETED} = {}) {
        const [list] = futures([aws]);
        const w = raw.wait(list, returnWhen, timeoutOf(timeout));
        return generatorTask(Afut.getEventLoop(), null, (function* () {
            yield w;
            const done = [], pending = [];
            const [, nDone] = Afut.wait_get_done(w, 0);
            for (let i = 0; i < nDone; i++)
                done.push(Afut.wait_get_done(w, i)[0]);
            const [, nPending] = Afut.wait_get_pending(w, 0);
            for (let i = 0; i < nPending; i++)
                pending.push(Afut.wait_get_pending(w, i)[0]);
            return [done, pending];
        })());
    };

    // asyncio.timeout() for generator tasks: `const v = yield*
    // Afut.timeout(1, function* () { ... })`.  On expiry the task is
    // cancelled, and the cancellation becomes a timeout error where the
    // body ends, unless one came from outside too (the task's cancel
    // count, afut's own, decides; CPython's Timeout).
    Afut.timeout = function* (delay, body) {
        const task = Afut.task_get_current(null);
        if (task === null)
            throw new Error('Afut.timeout() should be used inside a task');
        const future = task.get_future();
        const entry = task.cancelling();
        let expired = false;
        const handle = Afut.getEventLoop().call_later(delay, () => {
            expired = true;
            future.cancel(null);
        });
        try {
            return yield* body();
        } catch (e) {
            if (expired && task.uncancel() <= entry && Afut.isCancelled(e))
                throw new GLib.Error(ERROR, Afut.ErrorCode.TIMEOUT, 'Operation timed out');
            throw e;
        } finally {
            handle.cancel(null);
        }
    };

    // asyncio.Queue, LifoQueue and PriorityQueue: afut's queue (an
    // AfutQueue of null items) does the waiting, the first-come-first-
    // served wakeups, maxsize, taskDone() and join(); the JS values stay
    // in an array, moved in the same step as afut's put or get completes.
    // put() and get() return tasks to yield or await.
    Afut.newQueue = function ({maxsize = 0, kind = 'fifo', compare = null} = {}) {
        if (!['fifo', 'lifo', 'priority'].includes(kind))
            throw new TypeError(`Afut.newQueue: kind ${kind}`);
        const loop = Afut.getEventLoop();
        const queue = Afut.Queue.new(loop, Afut.QueueKind.FIFO, Math.max(0, maxsize),
            null, null);
        const items = [];
        let unfinished = 0;
        const order = compare || ((a, b) => a < b ? -1 : a > b ? 1 : 0);
        const push = value => {
            if (kind !== 'priority') {
                items.push(value);
                return;
            }
            let lo = 0, hi = items.length; // after its equals: put order
            while (lo < hi) {
                const mid = (lo + hi) >> 1;
                if (order(items[mid], value) <= 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            items.splice(lo, 0, value);
        };
        const pop = () => kind === 'lifo' ? items.pop() : items.shift();
        const rawPut = Afut.Queue.prototype.put, rawGet = Afut.Queue.prototype.get;
        queue.put = value => generatorTask(loop, null, (function* () {
            yield rawPut.call(queue, null);
            push(value);
            unfinished++;
        })());
        queue.get = () => generatorTask(loop, null, (function* () {
            yield rawGet.call(queue);
            return pop();
        })());
        queue.putNowait = value => {
            if (!queue.put_nowait(null))
                throw new Error('QueueFull');
            push(value);
            unfinished++;
        };
        queue.getNowait = () => {
            const [ok] = queue.get_nowait();
            if (!ok)
                throw new Error('QueueEmpty');
            return pop();
        };
        queue.taskDone = () => {
            if (unfinished <= 0)
                throw new Error('taskDone() called too many times');
            unfinished--;
            queue.task_done();
        };
        queue.qsize = () => items.length;
        return queue;
    };

    // ---- running ----

    // loop.run_until_complete(): the result, or its error thrown.  It
    // iterates the main context itself, so gjs's promise jobs run between
    // afut's batches.
    Afut.runUntilComplete = function (aw) {
        const loop = Afut.getEventLoop();
        if (Afut.loop_get_running() !== null)
            throw new Error('This event loop is already running');
        const future = typeof aw === 'function' ? Afut.createTask(aw) : Afut.ensureFuture(aw);
        const context = Afut.glib_loop_get_context(loop);
        while (!future.is_done())
            context.iteration(true);
        return future.result();
    };
    Afut.run_until_complete = Afut.runUntilComplete;

    // asyncio.run(): main (a generator or async function, a promise or a
    // future) to its end; then the tasks left are cancelled and awaited,
    // and the loop goes if run() made it.
    Afut.run = function (main) {
        if (Afut.loop_get_running() !== null)
            throw new Error('Afut.run() cannot be called from a running event loop');
        const madeHere = Afut.loop_get_thread_default() === null;
        if (madeHere)
            Afut.attach();
        try {
            if (typeof main === 'function')
                main = isGeneratorFunction(main) ? Afut.createTask(main) : main();
            return Afut.runUntilComplete(main);
        } finally {
            if (madeHere)
                Afut.detach();
        }
    };

    // ---- GIO ----

    // Awaits a GIO `_async` call: `yield Afut.gio(file,
    // 'load_contents_async', null)` gives what load_contents_finish()
    // returns.  The call's cancellable (null, or left out) is the future's
    // own; cancelling the awaiting task cancels the call, and the task
    // resumes only once GIO's callback has run, so that the stream is
    // free for cleanup (afut_gio_future_new).
    Afut.gio = function (object, method, ...args) {
        if (!method.endsWith('_async') || typeof object[method] !== 'function')
            throw new TypeError(`Afut.gio: ${method} is not a GIO _async method`);
        const finish = `${method.slice(0, -'_async'.length)}_finish`;
        const loop = Afut.getEventLoop();
        const future = Afut.gio_future_new(loop);
        const cancellable = Afut.glib_future_get_cancellable(future);
        if (args.length > 0 && args[args.length - 1] === null)
            args.pop();
        object[method](...args, cancellable, (source, result) => {
            Afut.gio_future_complete(future, result);
        });
        // The GIO future itself, not a task around it: a task cancelled
        // before its first step would never wait for GIO's callback.
        future._afutFinish = result => object[finish](result);
        return future;
    };
}
