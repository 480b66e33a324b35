// The Afut typelib from gjs: afut's own C API as introspected, and the
// gjs override on it (thenable futures, generator and async tasks, values
// and exceptions that cross unchanged, combinators, cancellation that
// reaches the task or fails loudly, GIO).  Each gjs failure of issue 14
// has a test here, named after it.
//
// Run by `meson test --suite gi` with GI_TYPELIB_PATH, LD_LIBRARY_PATH and
// GJS_PATH (for overrides/Afut.js) set.  Prints TAP; each test has its
// own virtual-clock loop.

imports.gi.versions.Afut = '1';
const {Afut, GLib, Gio} = imports.gi;
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

let loop = null;
const run = aw => Afut.runUntilComplete(aw);

function* failing(e, delay = 1) {
    yield Afut.sleep(delay);
    throw e;
}

// ---- the C API ----

test('boxed-types-are-afuts', () => {
    assertEq(Afut.Future.$gtype.name, 'AfutFuture');
    assertEq(Afut.Task.$gtype.name, 'AfutTask');
    assertEq(Afut.Loop.$gtype.name, 'AfutLoop');
    assertEq(Afut.Queue.$gtype.name, 'AfutQueue');
});

test('bool-crosses-as-0-or-1', () => {
    const f = Afut.Future.new(loop);
    for (let i = 0; i < 100; i++)
        assertEq(f.is_done(), 0);
    f.resolve();
    assertEq(f.is_done(), 1);
    assert(f.done() === true, 'done() is a boolean');
});

test('virtual-time-and-call-later', () => {
    const log = [];
    const h = loop.call_later(1.5, () => log.push(loop.time()));
    const c = loop.call_later(1, () => log.push('never'));
    c.cancel(null);
    run(h);
    assertEq(log, [1.5]);
});

// ---- values ----

test('any-js-value-is-a-result', () => {
    const obj = {a: 1}, err = new TypeError('as a value'), fn = () => 1;
    for (const v of [2 ** 40, 'text', true, null, [1, 2], obj, err, fn, 12345678901234567890n]) {
        const f = Afut.Future.new(loop);
        f.setResult(v);
        assert(f.result() === v, `the same value: ${String(v)}`);
    }
});

test('values-through-combinators', () => {
    const obj = {};
    function* give() {
        yield Afut.sleep(1);
        return obj;
    }
    const r = run(function* () {
        const a = yield Afut.waitFor(Afut.createTask(give), 5);
        const b = yield Afut.shield(Afut.createTask(give));
        const c = yield Afut.race(Afut.createTask(give), Afut.sleep(3));
        const d = yield Afut.gather(Afut.createTask(give), Afut.createTask(give));
        return [a, b, c, d[0], d[1]];
    });
    assert(r.every(x => x === obj), 'same object everywhere');
});

// ---- exceptions ----

test('exception-types-survive-gather', () => {
    // Issue 14: in gjs, gather rejected with an Afut_Error.
    const boom = new RangeError('bad input');
    const e = assertThrows(() => run(Afut.gather(
        Afut.createTask(failing, boom), Afut.sleep(2))), x => x === boom, 'gather');
    assert(e instanceof RangeError, 'a RangeError');
});

test('exception-same-object-through-every-combinator', () => {
    const boom = new Error('boom');
    const combine = {
        waitFor: t => Afut.waitFor(t, 10),
        shield: t => Afut.shield(t),
        race: t => Afut.race(t, Afut.sleep(5)),
        gatherReturnExceptions: t => Afut.gatherReturnExceptions(t),
    };
    for (const [name, c] of Object.entries(combine)) {
        let got;
        try {
            got = run(c(Afut.createTask(failing, boom)));
        } catch (e) {
            got = e;
        }
        if (Array.isArray(got))
            got = got[0];
        assert(got === boom, `${name}: the same object`);
    }
});

test('any-all-failed-is-an-aggregate-of-the-originals', () => {
    const a = new Error('a'), b = new TypeError('b');
    const e = assertThrows(() => run(Afut.any(Afut.createTask(failing, a),
        Afut.createTask(failing, b, 2))), x => x instanceof AggregateError, 'any');
    assert(e.errors[0] === a && e.errors[1] === b, 'the originals');
});

test('task-group-sub-errors-are-the-originals', () => {
    const a = new Error('a'), b = new TypeError('b');
    const e = assertThrows(() => run(function* () {
        const group = Afut.TaskGroup.new(Afut.task_get_current(null));
        group.spawn(Afut.createTask(failing, a));
        group.spawn(Afut.createTask(failing, b));
        yield group.exit();
    }), x => x instanceof AggregateError, 'group');
    assert(e.errors[0] === a && e.errors[1] === b, 'the originals');
});

test('c-sees-type-and-message', () => {
    const t = Afut.createTask(failing, new SyntaxError('seen from C'));
    run(Afut.gatherReturnExceptions(t));
    const error = t.get_error();
    assert(error.matches(Afut.exception_error_quark(), 0), 'the exception domain');
    assert(error.message.startsWith('SyntaxError: seen from C'), error.message);
});

test('c-errors-are-glib-errors-with-domain-and-code', () => {
    const f = Gio.File.new_for_path('/nonexistent/afut-test');
    const isNotFound = e => e instanceof GLib.Error &&
        e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND);
    assertThrows(() => run(Afut.gio(f, 'load_contents_async', null)), isNotFound, 'gio');
    // Yielded in a generator task, the _finish's error is thrown there.
    assert(isNotFound(run(function* () {
        try {
            yield Afut.gio(f, 'load_contents_async', null);
        } catch (e) {
            return e;
        }
        return null;
    })), 'thrown into the generator');
});

// ---- cancellation ----

test('generator-task-plain-yield-is-cancellable', () => {
    // Issue 14: t.cancel() returned, the body finished its sleep, and
    // `await t` gave its value.
    const log = [];
    const t = Afut.createTask(function* () {
        try {
            yield Afut.sleep(10);
            log.push('finished');
        } catch (e) {
            log.push(['cancelled', e.message]);
            yield Afut.sleep(1);
            log.push('cleaned up');
            throw e;
        }
        return 'value';
    });
    loop.call_later(1, () => t.cancel('bye'));
    assertThrows(() => run(t), Afut.isCancelled, 'task');
    assertEq(log, [['cancelled', 'bye'], 'cleaned up']);
    assertEq(loop.time(), 2);
    assertEq(t.cancelling(), 1);
});

test('async-task-plain-await-cancel-fails-loudly', () => {
    const t = Afut.createTask(async () => {
        await Afut.sleep(10);
        return 'value';
    });
    run(Afut.sleep(1));
    assertThrows(() => t.cancel(null), e => /plain/.test(e.message), 'cancel');
    t.get_task().uncancel();
    assertEq(run(t), 'value');
});

test('async-task-await-through-task-is-cancellable', () => {
    const log = [];
    const t = Afut.createTask(async task => {
        try {
            await task.await(Afut.sleep(10));
        } catch (e) {
            log.push(Afut.isCancelled(e));
            throw e;
        }
    });
    loop.call_later(1, () => t.cancel(null));
    assertThrows(() => run(t), Afut.isCancelled, 'task');
    assertEq(log, [true]);
});

test('gather-of-plain-promises-refuses-cancel', () => {
    // Issue 14: cancelling a gather of plain promises reported cancelled
    // while the reads kept running.
    async function read() {
        await Afut.sleep(1);
        return 'read';
    }
    const g = Afut.gather(read(), read());
    assertThrows(() => g.cancel(null), e => /plain Promise/.test(e.message), 'cancel');
    assertEq(run(g), ['read', 'read']);
});

test('gather-of-tasks-is-cancellable', () => {
    const log = [];
    function* child(name) {
        try {
            yield Afut.sleep(5);
        } catch (e) {
            log.push(name);
            throw e;
        }
    }
    const g = Afut.gather(Afut.createTask(child, 'a'), Afut.createTask(child, 'b'));
    loop.call_later(1, () => g.cancel(null));
    assertThrows(() => run(g), Afut.isCancelled, 'gather');
    assertEq(log, ['a', 'b']);
});

test('names-and-describe', () => {
    const t = Afut.createTask({name: 'worker', fn: function* () {
        yield Afut.sleep(3);
    }});
    run(Afut.sleep(1));
    assertEq(t.getName(), 'worker');
    assert(t.describe().includes("'worker'"), t.describe());
    run(t);
});

test('timeout-expires', () => {
    const r = run(function* () {
        try {
            yield* Afut.timeout(1, function* () {
                yield Afut.sleep(10);
            });
        } catch (e) {
            return [Afut.isTimeout(e), loop.time()];
        }
        return null;
    });
    assertEq(r, [true, 1]);
});

test('timeout-and-outer-cancel-in-one-iteration-ends-cancelled', () => {
    const log = [];
    const t = Afut.createTask(function* () {
        try {
            yield* Afut.timeout(1, function* () {
                yield Afut.sleep(10);
            });
            log.push('finished normally');
        } catch (e) {
            log.push(Afut.isTimeout(e) ? 'timed out' : 'cancelled');
            throw e;
        }
    });
    loop.call_later(1, () => t.cancel('shutdown'));
    assertThrows(() => run(t), Afut.isCancelled, 'task');
    assertEq(log, ['cancelled']);
});

test('queues', () => {
    const r = run(function* () {
        const q = Afut.newQueue({maxsize: 2});
        const log = [];
        const producer = Afut.createTask(function* () {
            for (let i = 0; i < 5; i++) {
                yield q.put({n: i});
                log.push(['put', i, loop.time()]);
            }
        });
        const got = [];
        for (let i = 0; i < 5; i++) {
            yield Afut.sleep(1);
            got.push((yield q.get()).n);
            q.taskDone();
        }
        yield producer;
        yield q.join();
        assertThrows(() => q.taskDone(), e => /too many/.test(e.message), 'taskDone');
        assertThrows(() => q.getNowait(), e => /QueueEmpty/.test(e.message), 'empty');
        const lifo = Afut.newQueue({kind: 'lifo'});
        const prio = Afut.newQueue({kind: 'priority'});
        for (const x of [3, 1, 2]) {
            lifo.putNowait(x);
            prio.putNowait(x);
        }
        return [got, log[2][2], [1, 2, 3].map(() => lifo.getNowait()),
            [1, 2, 3].map(() => prio.getNowait())];
    });
    assertEq(r, [[0, 1, 2, 3, 4], 1, [2, 1, 3], [1, 2, 3]]);
});

// ---- GIO ----

test('cancelled-chunked-read-then-closes-its-stream', () => {
    // Issue 14: the task resumed while GIO still owned the stream.
    const [file, stream0] = Gio.File.new_tmp('afut-gio-XXXXXX');
    stream0.get_output_stream().write_all(new Uint8Array(1000000), null);
    stream0.close(null);
    const log = [];
    const reading = Afut.Event.new(loop);
    const t = Afut.createTask(function* () {
        const stream = yield Afut.gio(file, 'read_async', GLib.PRIORITY_DEFAULT, null);
        let total = 0;
        try {
            for (;;) {
                const bytes = yield Afut.gio(stream, 'read_bytes_async', 4096,
                    GLib.PRIORITY_DEFAULT, null);
                if (bytes.get_size() === 0)
                    break;
                total += bytes.get_size();
                reading.set();
            }
        } catch (e) {
            log.push(['cancelled after', total > 0]);
            yield Afut.gio(stream, 'close_async', GLib.PRIORITY_DEFAULT, null);
            log.push(['closed', stream.is_closed()]);
            throw e;
        }
    });
    run(function* () {
        yield reading.wait();
        t.cancel(null);
        try {
            yield t;
        } catch (e) {
            assert(Afut.isCancelled(e), `${e}`);
        }
    });
    file.delete(null);
    assertEq(log, [['cancelled after', true], ['closed', true]]);
});

test('without-the-override-await-throws-loudly', () => {
    // Issue 14: gjs without GJS_PATH printed "awaited Afut.sleep(1):
    // 0.0003 s" and went on.  Without the override, await now throws.
    const script = `imports.gi.versions.Afut = '1';
        const Afut = imports.gi.Afut;
        if (Afut.run) throw new Error('the override loaded');
        const loop = Afut.glib_loop_new(null, 1);
        loop.push_thread_default();
        (async () => {
            try {
                await loop.sleep(1);
                print('went on');
            } catch (e) {
                print('threw: ' + e.message);
            }
        })();
        const ctx = imports.gi.GLib.MainContext.default();
        for (let i = 0; i < 10; i++) ctx.iteration(false);`;
    const env = GLib.get_environ().filter(v => !v.startsWith('GJS_PATH='));
    const [, out] = GLib.spawn_sync(null, ['gjs', '-c', script], env,
        GLib.SpawnFlags.SEARCH_PATH, null);
    const text = new TextDecoder().decode(out);
    assert(text.includes('threw: the Afut override (Afut.js) did not load'), text);
});

// ---- running ----

test('run', () => {
    Afut.detach();
    const result = Afut.run(function* () {
        Afut.createTask(function* () {
            yield Afut.sleep(100);
        }); // left over: cancelled by run()
        yield Afut.sleep(1);
        return 'ran';
    });
    assertEq(result, 'ran');
    assert(!Afut.isAttached(), 'run let its loop go');
    loop = Afut.attach(null, true);
});

test('async-functions-and-promises', () => {
    async function step(name, delay) {
        await Afut.sleep(delay);
        return name;
    }
    assertEq(run(Afut.gather(step('a', 2), step('b', 1))), ['a', 'b']);
});

// ---- TAP ----

print(`1..${tests.length}`);
let failed = 0;
tests.forEach(([name, func], i) => {
    loop = Afut.attach(null, true);
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
