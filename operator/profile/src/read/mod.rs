//! Reading one input file into a [`Part`]: the format's reader, fed by the object store.
//!
//! csv and jsonl stream: an async task pulls the object's bytes and hands them, in chunks of
//! 1 MiB, through a small bounded channel to a blocking thread that splits, decodes,
//! profiles and checks them, so memory stays at a few chunks plus one batch per file, and
//! the CPU work runs on tokio's blocking pool rather than on the executor's threads. A
//! local file (`file://`) is read by that thread directly. Parquet is read by row group
//! (see [`parquet`]).

mod csv;
mod jsonl;
mod parquet;
mod store;

use crate::check::{At, Checks};
use crate::part::Part;
use crate::{Error, Format, Input};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt as _};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// Rows decoded at once: large enough for vectorised kernels, small enough to stay in cache.
pub(crate) const BATCH_ROWS: usize = 8192;

/// The bytes at the head of a csv or jsonl file its schema is inferred from.
const SAMPLE_BYTES: usize = 1 << 20;

/// Chunks of a csv or jsonl object in flight between the store and its decoder.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Bytes handed to a decoder at once. Stores yield small chunks (8 KiB from a local file
/// system, a TLS record or so from S3); waking the decoding thread for each of them costs
/// more than copying them into larger ones.
const CHUNK_BYTES: usize = 1 << 20;

/// What every reader shares.
pub(crate) struct Context {
    pub store: Arc<dyn ObjectStore>,
    /// The inputs this part reads; readers number them from 0.
    pub inputs: Vec<Input>,
    /// The index of `inputs[0]` among all the version's inputs.
    pub first: usize,
    /// Each input's format, `None` when it is unknown.
    pub formats: Vec<Option<Format>>,
    pub checks: Checks,
    /// Units of CPU work at once: the available parallelism plus one, so that one unit's
    /// bytes can be fetched while the others decode.
    pub cpu: Arc<Semaphore>,
    pub parallelism: usize,
}

/// Reads input `file`.
pub(crate) async fn file(ctx: Arc<Context>, file: usize) -> Result<Part, Error> {
    let at = At { file, number: 0 };
    match ctx.formats[file] {
        None => Ok(Part::failed(
            at,
            format!(
                "{}: unknown format: set spec.format, or name the file .csv, .parquet or .jsonl",
                ctx.inputs[file].relative
            ),
        )),
        Some(Format::Parquet) => parquet::read(ctx, file).await,
        Some(format) => streamed(ctx, file, format).await,
    }
}

async fn streamed(ctx: Arc<Context>, file: usize, format: Format) -> Result<Part, Error> {
    let permit = ctx.cpu.clone().acquire_owned().await.map_err(internal)?;
    let result = ctx.store.get(&ctx.inputs[file].location).await?;
    let range = result.range.clone();
    let (mut chunks, pump) = match result.payload {
        // A local file is read in large blocks on the decoding thread itself; its stream
        // would hop to the blocking pool for every 8 KiB.
        GetResultPayload::File(handle, path) => (
            Chunks::File {
                handle,
                path,
                range,
            },
            None,
        ),
        GetResultPayload::Stream(stream) => {
            let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
            (Chunks::Channel(rx), Some((stream, tx)))
        }
    };
    let worker_ctx = ctx.clone();
    let worker = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match format {
            Format::Jsonl => jsonl::read(&worker_ctx, file, &mut chunks),
            _ => csv::read(&worker_ctx, file, &mut chunks),
        }
    });
    if let Some((stream, tx)) = pump {
        forward(stream, tx).await;
    }
    worker.await.map_err(internal)?
}

/// Hands a stream's bytes to a decoder in chunks of about [`CHUNK_BYTES`].
async fn forward(mut stream: BoxStream<'static, object_store::Result<Bytes>>, tx: Sender) {
    let mut pending = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) if pending.is_empty() && chunk.len() >= CHUNK_BYTES => chunk,
            Ok(chunk) => {
                pending.extend_from_slice(&chunk);
                if pending.len() < CHUNK_BYTES {
                    continue;
                }
                pending.split().freeze()
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        // A closed channel means the reader stopped early; it says why in its result.
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
    if !pending.is_empty() {
        let _ = tx.send(Ok(pending.freeze())).await;
    }
}

type Sender = mpsc::Sender<Result<Bytes, object_store::Error>>;

/// The bytes of one object, read on a blocking thread.
pub(crate) enum Chunks {
    File {
        handle: std::fs::File,
        path: std::path::PathBuf,
        range: Range<u64>,
    },
    Channel(mpsc::Receiver<Result<Bytes, object_store::Error>>),
}

impl Chunks {
    /// The next chunk, `None` at the end of the object.
    pub fn next(&mut self) -> Result<Option<Bytes>, Error> {
        match self {
            Chunks::Channel(rx) => match rx.blocking_recv() {
                Some(chunk) => Ok(Some(chunk?)),
                None => Ok(None),
            },
            Chunks::File {
                handle,
                path,
                range,
            } => {
                if range.start >= range.end {
                    return Ok(None);
                }
                let want = (range.end - range.start).min(CHUNK_BYTES as u64);
                let mut buf = Vec::with_capacity(want as usize);
                let read = handle
                    .seek(SeekFrom::Start(range.start))
                    .and_then(|_| handle.by_ref().take(want).read_to_end(&mut buf));
                match read {
                    Ok(0) => Ok(None),
                    Ok(n) => {
                        range.start += n as u64;
                        Ok(Some(buf.into()))
                    }
                    Err(e) => Err(Error::Source(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: format!("cannot read {}: {e}", path.display()).into(),
                    })),
                }
            }
        }
    }

    /// Reads at least `want` bytes (fewer at the end of the object) into `buf`; returns
    /// whether the object ended.
    pub fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> Result<bool, Error> {
        while buf.len() < want {
            match self.next()? {
                Some(chunk) => buf.extend_from_slice(&chunk),
                None => return Ok(true),
            }
        }
        Ok(false)
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

impl Context {
    /// A unit's sampling seed: reproducible per file and unit. The file counts among all the
    /// version's inputs, so a shard samples each file as a whole check would.
    pub fn seed(&self, file: usize, unit: usize) -> u64 {
        (((self.first + file) as u64) << 32) ^ unit as u64
    }
}
