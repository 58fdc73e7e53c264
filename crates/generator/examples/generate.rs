//! Prints generated events as NDJSON on stdout, to inspect the generator's output:
//! `cargo run --release -p opentrail-generator --example generate -- [EVENTS] [SEED]`.

use std::io::Write as _;

use opentrail_generator::{Generator, GeneratorConfig};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let events = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut generator = Generator::new(GeneratorConfig::new(seed, events));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut batch = Vec::with_capacity(1 << 20);
    loop {
        batch.clear();
        if generator.next_ndjson_batch(500, &mut batch) == 0 {
            break;
        }
        out.write_all(&batch)?;
    }
    out.flush()
}
