//! Writes the benchmark table:
//! - `bench-gen PATH [ROWS]`: one parquet file (default 10M rows);
//! - `bench-gen --csv DIR FILES ROWS_PER_FILE`: a tree of csv files (for memory checks);
//! - `bench-gen --version`: the generator version cached files are keyed by.

use ciclo_bench::{GENERATOR_VERSION, write_csv, write_table};
use std::io::BufWriter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--version"] => println!("{GENERATOR_VERSION}"),
        ["--csv", dir, files, rows] => {
            let (files, rows): (u64, usize) = (files.parse()?, rows.parse()?);
            for f in 0..files {
                let path = std::path::Path::new(dir).join(format!("part-{f:04}.csv"));
                std::fs::create_dir_all(path.parent().ok_or("no directory")?)?;
                write_csv(BufWriter::new(std::fs::File::create(path)?), rows, 1000 + f)?;
            }
        }
        [path] | [path, _] => {
            let rows: usize = args.get(1).map_or(Ok(10_000_000), |r| r.parse())?;
            write_table(BufWriter::new(std::fs::File::create(path)?), rows)?;
        }
        _ => {
            return Err(
                "usage: bench-gen PATH [ROWS] | bench-gen --csv DIR FILES ROWS | bench-gen --version"
                    .into(),
            );
        }
    }
    Ok(())
}
