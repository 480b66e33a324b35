// gjs overrides for Afut (the afut-gi typelib): JavaScript async
// functions on afut futures.
//
// SPDX-License-Identifier: MIT
//
//   const {Afut} = imports.gi;
//
//   async function cook(order) {
//       print(`Started cooking ${order}`);
//       await Afut.sleep(2);
//       print(`Finished ${order}`);
//       return order;
//   }
//
//   Afut.run(async () => {
//       await Afut.gather(cook('Pasta'), cook('Pizza'));
//   });
//
// An Afut.Future is a thenable: `await future` gives its value, or throws
// its error (a GLib.Error; Afut.isCancelled(e) tells a cancellation).  A
// gather's value is the list of its children's values.  Afut.gather,
// Afut.gatherReturnExceptions, Afut.waitFor and Afut.shield also take
// promises.  Promises cannot be cancelled: for a task that a cancellation
// reaches, use Afut.createTask(fn, ...args), which calls fn(task, ...args)
// and cancels, on task.cancel() or a cancelled gather, the future that fn
// awaits through `await task.await(future)`, whose await then throws the
// cancellation.

/* exported _init */

function _init() {
    const Afut = this;
    const GLib = imports.gi.GLib;
    const ERROR = Afut.error_quark();
    const introspected = {
        gather: Afut.gather,
        gather_return_exceptions: Afut.gather_return_exceptions,
        wait_for: Afut.wait_for,
        shield: Afut.shield,
        run_until_complete: Afut.run_until_complete,
    };

    function isError(e, code) {
        return e instanceof GLib.Error && e.matches(ERROR, code);
    }
    Afut.isCancelled = e => isError(e, Afut.Error.CANCELLED);
    Afut.isTimeout = e => isError(e, Afut.Error.TIMEOUT);

    // A JavaScript exception as the GError a future fails with.
    function toGError(e) {
        if (e instanceof GLib.Error)
            return e;
        return new GLib.Error(ERROR, Afut.Error.FAILED, `${e}`);
    }

    const proto = Afut.Future.prototype;

    // result(): the value, a gather's list of values, or the error thrown;
    // a JS exception that ended a task comes back as itself.
    proto.result = function () {
        if (this.is_gather() && this.get_state() === Afut.FutureState.DONE)
            return this.get_items().map(item => item.slot());
        try {
            return this.get_value();
        } catch (e) {
            if (this._jsError && isError(e, Afut.Error.FAILED) &&
                e.message === this._jsError[0])
                throw this._jsError[1];
            throw e;
        }
    };

    // A gather's item: its value, or its error (return_exceptions).
    proto.slot = function () {
        if (this.get_state() === Afut.FutureState.DONE)
            return this.result();
        return this.get_error();
    };

    proto.then = function (onFulfilled, onRejected) {
        const promise = new Promise((resolve, reject) => {
            this.add_done_callback(() => {
                try {
                    resolve(this.result());
                } catch (e) {
                    reject(e);
                }
            });
        });
        return promise.then(onFulfilled, onRejected);
    };

    function settle(future, promise) {
        Promise.resolve(promise).then(value => {
            if (!future.is_done())
                future.resolve(value === undefined ? null : value);
        }, e => {
            if (future.is_done())
                return;
            const error = toGError(e);
            if (error !== e)
                future._jsError = [error.message, e];
            future.fail(error);
        });
    }

    // A future for a promise, a future, or any value.
    Afut.ensureFuture = function (aw) {
        if (aw instanceof Afut.Future)
            return aw;
        const future = Afut.Future.new();
        settle(future, aw);
        return future;
    };

    const tasks = new Set();

    class Task {
        constructor() {
            this.waiting = null;
            this.mustCancel = false;
            this.message = null;
            this.future = Afut.Future.new_task((future, message) => {
                this.message = message;
                if (this.waiting !== null && this.waiting.cancel(message))
                    return true;
                this.mustCancel = true;
                return true;
            });
        }

        // The await a cancellation reaches.
        await(aw) {
            const future = Afut.ensureFuture(aw);
            if (this.mustCancel) {
                this.mustCancel = false;
                future.cancel(this.message);
            }
            this.waiting = future;
            return new Promise((resolve, reject) => {
                future.add_done_callback(() => {
                    if (this.waiting === future)
                        this.waiting = null;
                    try {
                        resolve(future.result());
                    } catch (e) {
                        reject(e);
                    }
                });
            });
        }

        cancel(message = null) {
            return this.future.cancel(message);
        }
    }

    // asyncio.create_task(): fn(task, ...args) runs from afut's ready
    // queue; the task's future completes as its promise settles.
    Afut.createTask = function (fn, ...args) {
        const task = new Task();
        const future = task.future;
        tasks.add(future);
        future.add_done_callback(() => tasks.delete(future));
        Afut.call_soon(() => {
            let promise;
            try {
                promise = fn(task, ...args);
            } catch (e) {
                promise = Promise.reject(e);
            }
            settle(future, promise);
        });
        return future;
    };

    function futures(aws) {
        if (aws.length === 1 && Array.isArray(aws[0]))
            aws = aws[0];
        return aws.map(aw => Afut.ensureFuture(aw));
    }

    Afut.gather = (...aws) => introspected.gather(futures(aws));
    Afut.gatherReturnExceptions =
        (...aws) => introspected.gather_return_exceptions(futures(aws));
    Afut.gather_return_exceptions = Afut.gatherReturnExceptions;
    Afut.waitFor = (aw, timeout) => introspected.wait_for(
        Afut.ensureFuture(aw), timeout === null || timeout === undefined ? Infinity : timeout);
    Afut.wait_for = Afut.waitFor;
    Afut.shield = aw => introspected.shield(Afut.ensureFuture(aw));

    // loop.run_until_complete(): the result, or its error thrown.
    Afut.runUntilComplete = function (aw) {
        const future = Afut.ensureFuture(aw);
        try {
            introspected.run_until_complete(future);
        } catch (e) {
            if (!future.is_done())
                throw e;
        }
        return future.result();
    };
    Afut.run_until_complete = Afut.runUntilComplete;

    // asyncio.run(): main (a function, a promise or a future) to its end;
    // then the tasks left are cancelled and awaited, and the loop goes if
    // run() made it.
    Afut.run = function (main) {
        const madeHere = !Afut.is_attached();
        try {
            return Afut.runUntilComplete(typeof main === 'function' ? main() : main);
        } finally {
            try {
                const left = [...tasks];
                left.forEach(future => future.cancel(null));
                if (left.length > 0)
                    introspected.run_until_complete(
                        introspected.gather_return_exceptions(left));
            } finally {
                if (madeHere)
                    Afut.detach();
            }
        }
    };
}
