// Cancellation on afut from gjs, as examples/cancel.c (the same lines,
// tests/expected/cancel.out).  A promise cannot be cancelled, so the
// cancellable coroutines are tasks (Afut.createTask): the future they
// await through task.await() is what a cancellation cancels, and that
// await throws it (Afut.isCancelled(e)).
imports.gi.versions.Afut = '1';
const {Afut} = imports.gi;

const STATES = ['pending', 'done', 'failed', 'cancelled'];

async function download(task) {
    print('download: started');
    try {
        await task.await(Afut.sleep(10));
    } catch (e) {
        if (!Afut.isCancelled(e))
            throw e;
        print('download: cancelled, removing the partial file');
        await task.await(Afut.sleep(0.1)); // clean up
        print('download: cleanup done');
        throw e;
    }
    print('download: finished');
}

async function cancelMidSleep() {
    print('== cancelling a task mid-sleep ==');
    const task = Afut.createTask(download);
    await Afut.sleep(0.5);
    print('main: cancelling the download');
    task.cancel(null);
    try {
        await task;
    } catch (e) {
        if (Afut.isCancelled(e))
            print('main: the download ended cancelled');
    }
}

async function child(task, name, delay) {
    print(`child ${name}: sleeping ${delay} s`);
    try {
        await task.await(Afut.sleep(delay));
    } catch (e) {
        if (Afut.isCancelled(e))
            print(`child ${name}: cancelled`);
        throw e;
    }
    print(`child ${name}: finished`);
}

async function cancelGather() {
    print('== cancelling a gather ==');
    const children = [
        Afut.createTask(child, 'a', 1),
        Afut.createTask(child, 'b', 2),
        Afut.createTask(child, 'c', 3)];
    const gather = Afut.gather(children);
    await Afut.sleep(0.5);
    print('main: cancelling the gather');
    gather.cancel(null);
    try {
        await gather;
    } catch (e) {
        if (!Afut.isCancelled(e))
            throw e;
    }
    print(`main: the gather is ${STATES[gather.get_state()]}`);
    children.forEach((item, i) =>
        print(`main: child ${i} is ${STATES[item.get_state()]}`));
}

async function worker(task) {
    print('worker: waiting for a job');
    await task.await(Afut.sleep(60));
    print('worker: got a job');
}

async function cancelMessage() {
    print('== a cancel message ==');
    const task = Afut.createTask(worker);
    await Afut.sleep(0.5);
    print("main: cancelling the worker: 'shutting down'");
    task.cancel('shutting down');
    try {
        await task;
    } catch (e) {
        if (Afut.isCancelled(e))
            print(`main: the worker was cancelled: '${e.message}'`);
    }
}

Afut.run(async () => {
    await cancelMidSleep();
    await cancelGather();
    await cancelMessage();
});
