// Errors across afut from gjs (examples/python/errors.py in JavaScript):
// a thrown JS value comes back as the same object through a task, gather
// and task groups (an AggregateError of the originals); afut's timeout
// and C errors (GIO's) are GLib.Errors with their domain and code.
// tests/expected/errors-gjs.out is its stdout.
imports.gi.versions.Afut = '1';
const {Afut, Gio, GLib} = imports.gi;

class ParseError extends Error {
    constructor(text) {
        super(`not a number: ${text}`);
        this.name = 'ParseError';
    }
}

function* parseNumber(text, delay = 0.1) {
    yield Afut.sleep(delay);
    const value = Number(text);
    if (Number.isNaN(value)) {
        print(`parseNumber('${text}') throws`);
        throw new ParseError(text);
    }
    print(`parseNumber('${text}') returns ${value}`);
    return value;
}

const task = (...args) => Afut.createTask(parseNumber, ...args);
const now = () => Afut.getEventLoop().time();

Afut.run(function* () {
    print('== an error thrown in a task, caught by its awaiter ==');
    print(`got ${yield task('42')}`);
    const bad = task('forty-two');
    try {
        yield bad;
    } catch (e) {
        print(`caught ${e}; the task's own: ${e === bad.exception()}`);
    }

    print('== gather: the first error fails it, the others keep running ==');
    let start = now();
    const seven = task('7', 0.3);
    try {
        yield Afut.gather(task('seven'), seven);
    } catch (e) {
        print(`gather failed after ${(now() - start).toFixed(1)} s: ${e}`);
    }
    print(`'7' is still running: ${!seven.done()}`);
    const value = yield seven;
    print(`'7' finished after ${(now() - start).toFixed(1)} s: ${value}`);

    print('== gatherReturnExceptions: a value or an error in each slot ==');
    const slots = yield Afut.gatherReturnExceptions(task('1', 0.3), task('two'), task('3', 0.2));
    slots.forEach((slot, i) => print(`slot ${i}: ${slot}`));

    print('== a task group: an AggregateError of the original errors ==');
    try {
        const group = Afut.TaskGroup.new(Afut.task_get_current(null));
        group.spawn(task('x'));
        group.spawn(task('y'));
        group.spawn(task('5', 1.0)); // cancelled
        yield group.exit();
    } catch (e) {
        print(`${e.errors.length} errors: ${e.errors.map(x => x instanceof ParseError ? `${x}` : '?').join(', ')}`);
    }

    print('== waitFor: a timeout ==');
    start = now();
    try {
        yield Afut.waitFor(task('9', 5), 1);
    } catch (e) {
        print(`timed out (${Afut.isTimeout(e)}) after ${(now() - start).toFixed(1)} s`);
    }

    print('== a C error: GLib.Error with its domain and code ==');
    try {
        yield Afut.gio(Gio.File.new_for_path('/nonexistent/afut-example'),
            'load_contents_async', null);
    } catch (e) {
        print(`GLib.Error: ${GLib.quark_to_string(e.domain)}, not found: ${e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND)}`);
    }
});
