// The GIO futures of afut-glib.h from gjs: each resolves with the typed
// value its _finish gives (GLib.Bytes, a stream), a signal future is
// awaited and its arguments read, and a cancelled read resumes its task
// only once GIO has let go, so the stream closes at once.
//
// Run by `meson test --suite gi` (gi-gjs-gio) with GI_TYPELIB_PATH,
// LD_LIBRARY_PATH and GJS_PATH set.  Prints TAP.

imports.gi.versions.Afut = '1';
const {Afut, GLib, Gio} = imports.gi;
const System = imports.system;

const tests = [];
function test(name, func) {
    tests.push([name, func]);
}

function assert(condition, what) {
    if (!condition)
        throw new Error(`assertion failed: ${what}`);
}

const run = aw => Afut.runUntilComplete(aw);
const PRIORITY = GLib.PRIORITY_DEFAULT;

function tempFile(contents) {
    const [file, stream] = Gio.File.new_tmp('afut-gio-XXXXXX');
    stream.get_output_stream().write_all(contents, null);
    stream.close(null);
    return file;
}

test('load-contents-is-bytes', () => {
    const file = tempFile('hello');
    const bytes = run(Afut.file_load_contents(file));
    assert(bytes instanceof GLib.Bytes, `a GLib.Bytes: ${bytes}`);
    assert(bytes.get_size() === 5, 'five bytes');
    file.delete(null);
});

test('read-is-a-stream', () => {
    const file = tempFile('0123456789');
    const stream = run(Afut.file_read(file, PRIORITY));
    assert(stream instanceof Gio.FileInputStream, `a stream: ${stream}`);
    const chunk = run(Afut.input_stream_read_bytes(stream, 4, PRIORITY));
    assert(chunk.get_size() === 4, 'four bytes');
    run(Afut.input_stream_close(stream, PRIORITY));
    assert(stream.is_closed(), 'closed');
    file.delete(null);
});

test('missing-file-rejects-with-its-gerror', () => {
    const file = Gio.File.new_for_path('/nonexistent-afut/missing');
    let error = null;
    try {
        run(Afut.file_load_contents(file));
    } catch (e) {
        error = e;
    }
    assert(error instanceof GLib.Error &&
        error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND),
    `NOT_FOUND: ${error}`);
});

test('signal-next-is-awaited', () => {
    const action = new Gio.SimpleAction({
        name: 'go', parameter_type: new GLib.VariantType('i'),
    });
    const fut = Afut.signal_next(action, 'activate');
    action.activate(new GLib.Variant('i', 9));
    // The value is the first argument (here the activation's parameter).
    assert(run(fut).unpack() === 9, 'the value');
    assert(Afut.signal_get_n_args(fut) === 1, 'one argument');
    assert(Afut.signal_get_arg(fut, 0).unpack() === 9, 'the argument');
});

test('cancelled-read-leaves-the-stream-free', () => {
    // A process that writes nothing until its input closes: its output
    // is an idle pipe.
    const proc = Gio.Subprocess.new(['sh', '-c', 'read x'],
        Gio.SubprocessFlags.STDIN_PIPE | Gio.SubprocessFlags.STDOUT_PIPE);
    const stream = proc.get_stdout_pipe();
    const seen = [];
    const task = Afut.createTask(function* () {
        try {
            yield Afut.input_stream_read_bytes(stream, 16, PRIORITY);
        } catch (e) {
            seen.push(stream.has_pending());
            stream.close(null);
            seen.push(stream.is_closed());
            throw e;
        }
    });
    run(Afut.createTask(function* () {
        yield Afut.sleep(0.1);
        task.cancel('stop');
        try {
            yield task;
        } catch (e) {
            seen.push('cancelled');
        }
    }));
    proc.get_stdin_pipe().close(null);
    proc.wait(null);
    assert(JSON.stringify(seen) === '[false,true,"cancelled"]',
        `stream free after the cancel: ${JSON.stringify(seen)}`);
});

// ---- TAP ----

print(`1..${tests.length}`);
let failed = 0;
tests.forEach(([name, func], i) => {
    Afut.attach(null, true);
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
