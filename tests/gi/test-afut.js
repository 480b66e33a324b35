// The Afut typelib from gjs: every introspected function, errors and
// cancellation crossing the binding, and the gjs overrides (thenable
// futures, tasks, gather of promises, waitFor, shield, run).
//
// Run by `meson test --suite gi` with GI_TYPELIB_PATH, LD_LIBRARY_PATH and
// GJS_PATH (for overrides/Afut.js) set.  Prints TAP; each test has its
// own virtual-clock loop.

imports.gi.versions.Afut = '1';
const {Afut, GLib} = imports.gi;
const System = imports.system;

const ERROR = Afut.error_quark();
const tests = [];
function test(name, func) {
    tests.push([name, func]);
}

function assert(condition, what) {
    if (!condition)
        throw new Error(`assertion failed: ${what}`);
}

function assertEq(got, expected, what = '') {
    const g = JSON.stringify(got), e = JSON.stringify(expected);
    if (g !== e)
        throw new Error(`${what}: got ${g}, expected ${e}`);
}

function assertThrows(func, check, what) {
    try {
        func();
    } catch (e) {
        assert(check(e), `${what}: wrong error ${e}`);
        return e;
    }
    throw new Error(`${what}: nothing thrown`);
}

function turn() {
    Afut.runUntilComplete(Afut.sleep(0));
}

const myDomain = GLib.quark_from_string('my-domain');
const isMine = code => e => e instanceof GLib.Error && e.matches(myDomain, code);

// ---- the loop ----

test('error-quark', () => {
    assertEq(ERROR, GLib.quark_from_string('afut-error-quark'));
});

test('attach-twice', () => {
    assert(Afut.is_attached(), 'attached');
    assertThrows(() => Afut.attach(null, Afut.LoopFlags.NONE),
        e => e.matches(ERROR, Afut.Error.INVALID_STATE), 'attach');
});

test('detach-and-first-use', () => {
    Afut.detach();
    assert(!Afut.is_attached(), 'detached');
    const f = Afut.Future.new();
    assert(Afut.is_attached(), 'made on first use');
    f.cancel(null);
});

test('context-and-time', () => {
    assert(Afut.get_context() instanceof GLib.MainContext, 'a main context');
    assertEq(Afut.time(), 0);
    Afut.runUntilComplete(Afut.sleep(2.5));
    assertEq(Afut.time(), 2.5);
});

test('call-soon-fifo', () => {
    const log = [];
    assert(Afut.call_soon(() => log.push('a')), 'queued');
    Afut.call_soon(() => log.push('b'));
    assertEq(log, []);
    turn();
    assertEq(log, ['a', 'b']);
});

test('call-later', () => {
    const log = [];
    const handle = Afut.call_later(1.5, () => log.push(Afut.time()));
    const cancelled = Afut.call_later(1, () => log.push('never'));
    assert(cancelled.cancel(null), 'cancel');
    Afut.runUntilComplete(handle);
    assertEq(log, [1.5]);
    assert(cancelled.is_cancelled(), 'handle cancelled');
});

test('run-until-complete-inside-is-an-error', () => {
    const errors = [];
    const f = Afut.sleep(1);
    f.add_done_callback(() => {
        try {
            Afut.run_until_complete(Afut.sleep(1));
        } catch (e) {
            errors.push(e);
        }
    });
    Afut.runUntilComplete(f);
    turn();
    assertEq(errors.length, 1);
    assert(errors[0].matches(ERROR, Afut.Error.INVALID_STATE), 'invalid state');
});

// ---- futures ----

test('values-cross-as-gvalues', () => {
    for (const value of ['text', 42, 2.5, true, null]) {
        const f = Afut.Future.new();
        assertEq(f.get_state(), Afut.FutureState.PENDING);
        assert(f.resolve(value), 'resolve');
        assertEq(f.get_state(), Afut.FutureState.DONE);
        assert(f.is_done() && !f.is_cancelled(), 'done');
        assertEq(f.get_error(), null);
        assertEq(f.get_value(), value);
    }
});

test('pending-value-is-invalid-state', () => {
    const f = Afut.Future.new();
    assertThrows(() => f.get_value(),
        e => e.matches(ERROR, Afut.Error.INVALID_STATE), 'get_value');
    assertEq(f.get_error(), null);
    f.cancel(null);
});

test('fail-crosses-as-gerror', () => {
    const f = Afut.Future.new();
    assert(f.fail(new GLib.Error(myDomain, 7, 'boom')), 'fail');
    assertEq(f.get_state(), Afut.FutureState.FAILED);
    const e = f.get_error();
    assert(isMine(7)(e) && e.message === 'boom', 'get_error');
    assertThrows(() => f.get_value(), isMine(7), 'get_value');
});

test('cancel-with-message', () => {
    const f = Afut.Future.new();
    assert(f.cancel('stop'), 'cancel');
    assert(!f.cancel('again'), 'cancel again');
    assert(f.is_cancelled(), 'cancelled');
    assertEq(f.get_state(), Afut.FutureState.CANCELLED);
    const e = f.get_error();
    assert(Afut.isCancelled(e) && e.message === 'stop', 'cancel error');
});

test('done-callbacks-later-in-order', () => {
    const log = [];
    const f = Afut.Future.new();
    f.add_done_callback(g => log.push(['a', g.get_value()]));
    f.add_done_callback(() => log.push('b'));
    f.resolve(1);
    assertEq(log, []);
    turn();
    assertEq(log, [['a', 1], 'b']);
});

test('a-throwing-callback-does-not-break-the-loop', () => {
    const log = [];
    const f = Afut.Future.new();
    f.add_done_callback(() => {
        throw new Error('inside a callback (expected in this test)');
    });
    f.add_done_callback(() => log.push('after'));
    Afut.call_soon(() => f.resolve(null));
    Afut.runUntilComplete(Afut.sleep(1));
    Afut.runUntilComplete(Afut.sleep(1));
    assertEq(log, ['after']);
    assertEq(Afut.time(), 2);
});

test('new-task-asks-its-cancel-func', () => {
    const asked = [];
    const f = Afut.Future.new_task((g, message) => {
        asked.push(message);
        return true;
    });
    assert(f.cancel('please'), 'requested');
    assertEq(asked, ['please']);
    assert(!f.is_done(), 'pending until completed');
    f.fail(new GLib.Error(ERROR, Afut.Error.CANCELLED, 'please'));
    assert(f.is_cancelled(), 'cancelled');
    const refusing = Afut.Future.new_task(() => false);
    assert(!refusing.cancel(null), 'refused');
    refusing.resolve(5);
    assertEq(refusing.get_value(), 5);
});

test('items-of-no-gather', () => {
    const f = Afut.Future.new();
    assert(!f.is_gather(), 'not a gather');
    assertEq(f.get_items().length, 0);
    f.cancel(null);
});

// ---- combinators ----

test('sleep', () => {
    const f = Afut.sleep(3);
    assert(!f.is_done(), 'pending');
    assertEq(Afut.runUntilComplete(f), null);
    assertEq(Afut.time(), 3);
    const stopped = Afut.sleep(10);
    assert(stopped.cancel(null) && stopped.is_cancelled(), 'cancelled sleep');
});

test('gather-in-input-order', () => {
    const a = Afut.sleep(2), b = Afut.Future.new();
    Afut.call_later(1, () => b.resolve('B'));
    const g = Afut.gather([a, b, a]);
    assert(g.is_gather(), 'is_gather');
    assertEq(Afut.runUntilComplete(g), [null, 'B', null]);
    assertEq(g.get_items().length, 3);
    assertEq(Afut.gather([]).result(), []);
});

test('gather-fails-first-others-run-on', () => {
    const slow = Afut.sleep(5), bad = Afut.Future.new();
    Afut.call_later(1, () => bad.fail(new GLib.Error(myDomain, 1, 'boom')));
    assertThrows(() => Afut.runUntilComplete(Afut.gather(slow, bad)), isMine(1), 'gather');
    assertEq(Afut.time(), 1);
    assert(!slow.is_done(), 'others keep running');
    Afut.runUntilComplete(slow);
});

test('gather-return-exceptions', () => {
    const ok = Afut.Future.new(), bad = Afut.Future.new(), off = Afut.Future.new();
    ok.resolve('fine');
    bad.fail(new GLib.Error(myDomain, 2, 'boom'));
    off.cancel('off');
    const result = Afut.runUntilComplete(Afut.gather_return_exceptions([ok, bad, off]));
    assertEq(result[0], 'fine');
    assert(isMine(2)(result[1]), 'error slot');
    assert(Afut.isCancelled(result[2]), 'cancelled slot');
});

test('cancelling-a-gather-cancels-its-children', () => {
    const children = [Afut.sleep(1), Afut.Future.new(), Afut.sleep(3)];
    const g = Afut.gather(children);
    Afut.call_later(0.5, () => g.cancel('enough'));
    assertThrows(() => Afut.runUntilComplete(g), Afut.isCancelled, 'gather');
    assert(children.every(c => c.is_cancelled()), 'children cancelled');
});

test('wait-for', () => {
    const f = Afut.Future.new();
    Afut.call_later(1, () => f.resolve('in time'));
    assertEq(Afut.runUntilComplete(Afut.wait_for(f, 2)), 'in time');
    const inner = Afut.sleep(10);
    assertThrows(() => Afut.runUntilComplete(Afut.wait_for(inner, 1)),
        Afut.isTimeout, 'timeout');
    assert(inner.is_cancelled(), 'inner cancelled');
    assertEq(Afut.runUntilComplete(Afut.waitFor(Afut.sleep(100), null)), null);
});

test('shield', () => {
    const inner = Afut.sleep(2);
    const s = Afut.shield(inner);
    Afut.call_later(1, () => s.cancel(null));
    assertThrows(() => Afut.runUntilComplete(s), Afut.isCancelled, 'shield');
    assert(!inner.is_done(), 'inner runs on');
    Afut.runUntilComplete(inner);
    assertEq(Afut.time(), 2);
});

// ---- async functions ----

test('await-and-gather-promises', () => {
    const log = [];
    async function step(name, delay) {
        log.push(`${name} start`);
        await Afut.sleep(delay);
        log.push(`${name} end`);
        return name;
    }
    assertEq(Afut.runUntilComplete(Afut.gather(step('a', 2), step('b', 1))), ['a', 'b']);
    assertEq(log, ['a start', 'b start', 'b end', 'a end']);
});

test('js-exception-crosses-and-comes-back', () => {
    const boom = new TypeError('boom');
    const task = Afut.createTask(async () => {
        await Afut.sleep(0);
        throw boom;
    });
    const e = assertThrows(() => Afut.runUntilComplete(task), x => x === boom, 'task');
    assert(e === boom, 'same object');
    // What C and the other bindings see: a GError.
    assertThrows(() => task.get_value(),
        x => x.matches(ERROR, Afut.Error.FAILED) && x.message === 'TypeError: boom', 'gerror');
});

test('cancel-reaches-task-await', () => {
    const log = [];
    const task = Afut.createTask(async t => {
        try {
            await t.await(Afut.sleep(10));
        } catch (e) {
            log.push(['cancelled', e.message]);
            await t.await(Afut.sleep(1));
            log.push('cleaned up');
            throw e;
        }
    });
    Afut.call_later(1, () => task.cancel('bye'));
    assertThrows(() => Afut.runUntilComplete(task), Afut.isCancelled, 'task');
    assertEq(log, [['cancelled', 'bye'], 'cleaned up']);
    assertEq(Afut.time(), 2);
});

test('gather-cancel-propagates-to-tasks', () => {
    const log = [];
    async function child(t, name) {
        try {
            await t.await(Afut.sleep(5));
        } catch (e) {
            log.push(name);
            throw e;
        }
    }
    const g = Afut.gather(Afut.createTask(child, 'a'), Afut.createTask(child, 'b'));
    Afut.call_later(1, () => g.cancel(null));
    assertThrows(() => Afut.runUntilComplete(g), Afut.isCancelled, 'gather');
    assertEq(log, ['a', 'b']);
});

test('run', () => {
    Afut.detach();
    const result = Afut.run(async () => {
        Afut.createTask(async t => {
            await t.await(Afut.sleep(100));
        }); // left over: cancelled by run()
        await Afut.sleep(1);
        return 'ran';
    });
    assertEq(result, 'ran');
    assert(!Afut.is_attached(), 'run let its loop go');
    Afut.attach(null, Afut.LoopFlags.VIRTUAL_CLOCK);
});

// ---- TAP ----

print(`1..${tests.length}`);
let failed = 0;
tests.forEach(([name, func], i) => {
    Afut.attach(null, Afut.LoopFlags.VIRTUAL_CLOCK);
    try {
        func();
        print(`ok ${i + 1} ${name}`);
    } catch (e) {
        failed++;
        print(`not ok ${i + 1} ${name}`);
        printerr(`# ${name}: ${e}\n${e.stack || ''}`);
    } finally {
        Afut.detach();
    }
});
System.exit(failed > 0 ? 1 : 0);
