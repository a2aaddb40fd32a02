//! Times `ciclo_profile::profile` on a file, or on every file under a directory:
//! `bench-profile PATH [RUNS]`. Prints each run's seconds, then `median <seconds>` and the
//! process's peak resident memory (`peak_rss_mib`).

use ciclo_bench::median;
use ciclo_profile::Input;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: bench-profile PATH [RUNS]")?;
    let runs: usize = args.next().map_or(Ok(1), |r| r.parse())?;
    let path = std::fs::canonicalize(path)?;
    let (root, inputs) = if path.is_dir() {
        (path.clone(), files(&path, &path)?)
    } else {
        let dir = path.parent().ok_or("no directory")?.to_path_buf();
        (dir.clone(), files(&dir, &path)?)
    };
    let store = Arc::new(LocalFileSystem::new_with_prefix(root)?);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let outcome = ciclo_profile::profile(store.clone(), inputs.clone(), None, None).await?;
        let seconds = start.elapsed().as_secs_f64();
        if !outcome.failures.is_empty() {
            return Err(format!("the table fails: {:?}", outcome.failures).into());
        }
        println!("run {seconds:.3} s ({} rows)", outcome.profile.rows);
        // For a look at what was computed (and a comparison with the peer's numbers).
        if std::env::var_os("BENCH_PRINT_PROFILE").is_some() {
            for c in &outcome.profile.columns {
                let mut c = c.clone();
                c.kll_sketch = None;
                c.histogram = None;
                println!("{}", serde_json::to_string(&c)?);
            }
        }
        times.push(seconds);
    }
    println!("median {:.3}", median(times));
    if let Some(peak) = peak_memory() {
        println!("peak_rss_mib {peak}");
    }
    Ok(())
}

/// `path` itself if it is a file, else every file under it, relative to `root`.
fn files(root: &std::path::Path, path: &std::path::Path) -> std::io::Result<Vec<Input>> {
    if path.is_file() {
        let relative = path
            .strip_prefix(root)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .to_string();
        return Ok(vec![Input {
            location: Path::from(relative.as_str()),
            size: std::fs::metadata(path)?.len(),
            relative,
        }]);
    }
    let mut inputs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        inputs.extend(files(root, &entry.path())?);
    }
    Ok(inputs)
}

/// The process's peak resident set, in MiB (Linux).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
