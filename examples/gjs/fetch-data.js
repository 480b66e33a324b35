// The seed's fetch_data (tests/seed/06-gather-results.py) on afut, from
// gjs: gather's results come back in input order.
imports.gi.versions.Afut = '1';
const {Afut} = imports.gi;

async function fetchData(id, delay) {
    print(`Task ${id} started`);
    await Afut.sleep(delay);
    print(`Task ${id} completed`);
    return `data-${id}`;
}

async function main() {
    const results = await Afut.gather(
        fetchData(1, 2), // Takes 2 seconds
        fetchData(2, 1), // Takes 1 second
        fetchData(3, 3)); // Takes 3 seconds
    // Python's list repr, as the seed prints it.
    print(`[${results.map(r => `'${r}'`).join(', ')}]`);
}

Afut.run(main);
