// The seed's three cooks (tests/seed/01-cook.py) on afut, from gjs.
imports.gi.versions.Afut = '1';
const {Afut} = imports.gi;

async function cook(order) {
    print(`Started cooking ${order}`);
    await Afut.sleep(2); // simulates cooking time
    print(`Finished ${order}`);
    return order;
}

async function main() {
    await Afut.gather(
        cook('Pasta'),
        cook('Pizza'),
        cook('Salad'));
}

Afut.run(main);
