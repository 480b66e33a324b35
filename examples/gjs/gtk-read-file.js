// A GTK 4 window that reads a file through GIO on afut, in chunks, with a
// progress bar and a Cancel button (examples/python/gtk-read-file.py in
// JavaScript).
//
//   gjs gtk-read-file.js [FILE]        (a 32 MiB scratch file by default)
//   gjs gtk-read-file.js --self-test   (clicks through it, exit 0 if fine)
//   gjs gtk-read-file.js --self-test --screenshot=PNG (and saves the
//                                      window after Cancel)
//
// The afut loop is one GSource on GTK's main context (Afut.attach()).
// Read starts a generator task, whose every `yield` is an await that a
// cancellation reaches; Cancel cancels it: the read in flight is
// cancelled through the future's GCancellable, the task resumes only
// once GIO has let go of the stream (Afut.gio), closes it and says so.
imports.gi.versions.Gtk = '4.0';
imports.gi.versions.Afut = '1';
const {Afut, Gio, GLib, Gtk} = imports.gi;
const System = imports.system;

const CHUNK = 64 * 1024;

class Reader {
    constructor(app, path) {
        this.path = path;
        this.task = null;
        this.progressed = null; // an AfutEvent per read, for the self-test
        this.status = new Gtk.Label({label: 'Press Read', xalign: 0});
        this.bar = new Gtk.ProgressBar({show_text: true});
        this.readButton = new Gtk.Button({label: 'Read'});
        this.cancelButton = new Gtk.Button({label: 'Cancel', sensitive: false});
        this.readButton.connect('clicked', () => this.onRead());
        this.cancelButton.connect('clicked', () => this.onCancel());
        const buttons = new Gtk.Box({spacing: 6});
        buttons.append(this.readButton);
        buttons.append(this.cancelButton);
        const box = new Gtk.Box({
            orientation: Gtk.Orientation.VERTICAL, spacing: 12,
            margin_top: 12, margin_bottom: 12, margin_start: 12, margin_end: 12,
        });
        for (const w of [new Gtk.Label({label: GLib.path_get_basename(path), xalign: 0}),
            this.bar, this.status, buttons])
            box.append(w);
        this.window = new Gtk.ApplicationWindow({
            application: app, child: box, title: 'afut: read a file', default_width: 420,
        });
        this.window.present();
    }

    onRead() {
        this.progressed = Afut.Event.new(Afut.getEventLoop());
        this.task = Afut.createTask({name: 'read', fn: this.read.bind(this)});
        this.readButton.sensitive = false;
        this.cancelButton.sensitive = true;
    }

    onCancel() {
        if (this.task !== null)
            this.task.cancel('Cancel pressed');
    }

    *read() {
        let total = 0, size, stream;
        try {
            const file = Gio.File.new_for_path(this.path);
            const info = yield Afut.gio(file, 'query_info_async', 'standard::size',
                Gio.FileQueryInfoFlags.NONE, GLib.PRIORITY_DEFAULT, null);
            size = Math.max(1, info.get_size());
            stream = yield Afut.gio(file, 'read_async', GLib.PRIORITY_DEFAULT, null);
        } catch (e) {
            if (Afut.isCancelled(e)) {
                this.finish('Cancelled before reading');
                throw e;
            }
            this.finish(`Error: ${e.message}`);
            return null;
        }
        try {
            for (;;) {
                const bytes = yield Afut.gio(stream, 'read_bytes_async', CHUNK,
                    GLib.PRIORITY_DEFAULT, null);
                if (bytes.get_size() === 0)
                    break;
                total += bytes.get_size();
                this.bar.fraction = total / size;
                this.status.label = `${total} of ${size} bytes`;
                this.progressed.set();
            }
        } catch (e) {
            if (!Afut.isCancelled(e)) {
                this.finish(`Error: ${e.message}`);
                return null;
            }
            // GIO has let go of the stream: it can be closed.
            yield Afut.gio(stream, 'close_async', GLib.PRIORITY_DEFAULT, null);
            this.finish(`Cancelled after ${total} bytes (${e.message}); ` +
                `stream closed: ${stream.is_closed()}`);
            throw e;
        }
        yield Afut.gio(stream, 'close_async', GLib.PRIORITY_DEFAULT, null);
        this.finish(`Done: ${total} bytes`);
        return total;
    }

    finish(text) {
        this.status.label = text;
        this.readButton.sensitive = true;
        this.cancelButton.sensitive = false;
    }
}

// The window as GTK draws it, rendered by its own renderer to a PNG.
function saveScreenshot(window, path) {
    const paintable = Gtk.WidgetPaintable.new(window);
    const snapshot = new Gtk.Snapshot();
    paintable.snapshot(snapshot, window.get_width(), window.get_height());
    const node = snapshot.to_node();
    if (node === null)
        return false;
    const texture = window.get_native().get_renderer().render_texture(node, node.get_bounds());
    return texture.save_to_png(path);
}

// Clicks Read, then Cancel once the first chunk came; Read again to the
// end; then a missing file.  Checks what the window says.
function* selfTest(app, reader, screenshot) {
    try {
        return yield* clicks(reader, screenshot);
    } finally {
        app.quit(); // whatever happens
    }
}

function* clicks(reader, screenshot) {
    const failures = [];
    const check = (ok, what) => {
        if (!ok)
            failures.push(what);
    };
    reader.readButton.emit('clicked');
    yield reader.progressed.wait();
    reader.cancelButton.emit('clicked');
    try {
        yield reader.task;
        check(false, 'the cancelled read finished');
    } catch (e) {
        check(Afut.isCancelled(e), `cancelled: ${e}`);
    }
    let text = reader.status.label;
    check(text.startsWith('Cancelled after ') && text.endsWith('stream closed: true'),
        `after Cancel: ${text}`);
    check(reader.bar.fraction > 0 && reader.bar.fraction < 1, 'partial progress');
    check(reader.readButton.sensitive, 'Read is clickable again');
    if (screenshot) {
        yield Afut.sleep(0.2); // a frame drawn with the new text
        check(saveScreenshot(reader.window, screenshot), 'screenshot saved');
    }

    reader.readButton.emit('clicked');
    const total = yield reader.task;
    text = reader.status.label;
    check(text === `Done: ${total} bytes`, `after a full read: ${text}`);
    const size = Gio.File.new_for_path(reader.path).query_info('standard::size',
        Gio.FileQueryInfoFlags.NONE, null).get_size();
    check(total === size, 'read every byte');
    check(reader.bar.fraction === 1, 'the bar is full');

    reader.path += '.missing';
    reader.readButton.emit('clicked');
    yield reader.task;
    check(reader.status.label.startsWith('Error: '), `a missing file: ${reader.status.label}`);
    failures.forEach(f => printerr(`FAIL: ${f}`));
    print(`self-test: ${failures.length === 0 ? 'ok' : `${failures.length} failures`}`);
    return failures.length === 0;
}

function main(argv) {
    const selfTesting = argv.includes('--self-test');
    const shot = argv.filter(a => a.startsWith('--screenshot=')).map(a => a.split('=')[1])[0];
    const args = argv.filter(a => !a.startsWith('--s'));
    let path, scratch = null;
    if (args.length > 0) {
        path = args[0];
    } else {
        const [file, io] = Gio.File.new_tmp('afut-gtk-read-XXXXXX');
        const chunk = new Uint8Array(1024 * 1024);
        for (let i = 0; i < 32; i++)
            io.get_output_stream().write_all(chunk, null);
        io.close(null);
        path = scratch = file.get_path();
    }
    Afut.attach(); // afut on GTK's main context
    const app = new Gtk.Application({
        application_id: 'org.example.AfutReadFileJs',
        flags: Gio.ApplicationFlags.NON_UNIQUE,
    });
    let test = null;
    app.connect('activate', () => {
        const reader = new Reader(app, path);
        if (selfTesting)
            test = Afut.createTask(selfTest, app, reader, shot);
    });
    let status = app.run([System.programInvocationName]);
    if (selfTesting)
        status = test !== null && test.done() && test.result() ? 0 : 1;
    Afut.detach(); // cancels what still runs
    if (scratch !== null)
        GLib.unlink(scratch);
    return status;
}

System.exit(main(ARGV));
