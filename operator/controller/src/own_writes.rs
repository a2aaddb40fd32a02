//! Reading one's own writes from a cache.
//!
//! A reconcile reads its object from the controller's cache instead of asking the API server,
//! except when the cache has not yet seen this process's last status write to it: then the
//! cached status is older than what the operator already wrote (a run it recorded, a run it
//! started), and acting on it could record or start something twice. The watch event of that
//! write is on its way, and it wakes the object again; until then the reconcile waits.
//!
//! Whether the cache has seen a write is told by resource versions: since Kubernetes 1.35
//! they are comparable as increasing integers within one resource type (KEP-5504, part of
//! conformance). Where a server's are not (not decimal), the reconcile reads the object
//! fresh, as it always did.
//!
//! A kind whose cache keeps only part of each object (TrainingRuns: see
//! `controllers/training_run/cached.rs`) is read whole from the API server instead
//! ([`read_whole`]), except right after this process wrote it: the object a write returns is
//! kept for a while ([`OwnWrites::keep_objects_of`]), and while the cache holds that very
//! version it is the object, with no request. Most reconciles of such a kind follow its own
//! status write (the write's watch event, then its Job's changes).

use crate::context::Context;
use crate::error::Result;
use crate::status::Owner;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::core::DeserializeGuard;
use std::any::Any;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a write is waited for. A watch that lost its connection relists and delivers the
/// write later; past this, the object is read fresh once instead.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long a written object is kept ([`OwnWrites::keep_objects_of`]). The reconciles that
/// follow a write come within seconds (its own watch event, its Job's first changes); after
/// this the object is read from the API server, which is always right. Short, because while
/// many objects are written (10,000 TrainingRuns applied at once) the kept ones add up.
/// They are let go at the next write of a kept object after that, so what is held is at most
/// the last [`KEEP`]'s worth of writes (about 750 TrainingRuns, 2 MiB, at the pace of 10,000
/// applied at once), also in steady state.
const KEEP: Duration = Duration::from_secs(10);

/// The resource versions this process's status writes produced, per object, and for the
/// kinds that ask, the objects themselves for a while.
#[derive(Default)]
pub struct OwnWrites {
    written: Mutex<Writes>,
    /// The kinds whose written objects are kept ([`OwnWrites::keep_objects_of`]).
    keeping: Mutex<HashSet<String>>,
}

/// The last write of each object, and the kept objects in the order they were written.
#[derive(Default)]
struct Writes {
    last: HashMap<Key, Written>,
    /// When each kept object was written, oldest first: letting go of the ones past [`KEEP`]
    /// looks at those alone. (Looking through every write instead, at each write, cost the
    /// operator time in the square of the objects: 10,000 TrainingRuns written once each
    /// made 50 million looks.)
    kept: VecDeque<(Instant, Key)>,
}

impl Writes {
    /// Drops the objects kept longer than [`KEEP`] (their versions stay: see [`KEEP`]).
    fn let_go(&mut self) {
        while let Some((at, key)) = self.kept.front() {
            if at.elapsed() < KEEP {
                break;
            }
            // Unless the object was written again since: that write has its own place.
            if let Some(w) = self.last.get_mut(key).filter(|w| w.at == *at) {
                if w.caught_up {
                    // Nothing left to wait for either: 10,000 TrainingRuns written once and
                    // not reconciled again kept their entries (3 MiB) for good.
                    self.last.remove(key);
                } else {
                    w.object = None;
                }
            }
            self.kept.pop_front();
        }
    }
}

/// This process's last write of an object.
struct Written {
    /// The resource version it produced; empty while unknown.
    version: String,
    at: Instant,
    /// The object as the write returned it, for a kind that keeps them.
    object: Option<Arc<dyn Any + Send + Sync>>,
    /// The cache has been seen holding this write.
    caught_up: bool,
}

/// Kind, namespace, name.
type Key = (String, String, String);

/// What the cache holds of an object, beside this process's last write to it.
#[derive(Debug, PartialEq, Eq)]
pub enum Freshness {
    /// The cache has seen every write of this process: reconcile the cached object.
    Current,
    /// The cache is behind a write this process made: wait for its watch event.
    Behind,
    /// Cannot tell (resource versions not comparable, or the write's event is overdue):
    /// read the object from the API server.
    Unknown,
}

impl OwnWrites {
    /// Keeps the objects this process writes of `kind` for [`KEEP`], for [`read_whole`]:
    /// for a kind whose cache does not hold whole objects.
    pub fn keep_objects_of(&self, kind: &str) {
        self.keeping
            .lock()
            .expect("own writes lock")
            .insert(kind.to_string());
    }

    /// Records that this process wrote `kind` `ns`/`name`, which then had `resource_version`.
    pub fn wrote(&self, kind: &str, ns: &str, name: &str, resource_version: Option<&str>) {
        self.record(kind, ns, name, resource_version, None);
    }

    fn record(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        resource_version: Option<&str>,
        object: Option<Arc<dyn Any + Send + Sync>>,
    ) {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        let mut written = self.written.lock().expect("own writes lock");
        let at = Instant::now();
        if object.is_some() {
            // Kept objects are dropped once [`KEEP`] has passed, read or not: the map holds
            // the writes of the last moments, not a second cache. Their versions stay until
            // the cache is past them, as every write's: a reconcile must not read the object
            // older than this process's write of it.
            written.let_go();
            written.kept.push_back((at, key.clone()));
        }
        written.last.insert(
            key,
            Written {
                // A write whose result is unknown: nothing to wait for, read fresh next time.
                version: resource_version.unwrap_or_default().to_string(),
                at,
                object,
                caught_up: false,
            },
        );
    }

    /// Makes `write` (a write of `kind` `ns`/`name` answered with the object) and records the
    /// version it made, and the object for a kind that keeps them. Until the answer comes,
    /// and if none does (a write that timed out may still have been made), the object is
    /// read fresh next time.
    pub async fn write<K: kube::Resource + Clone + Send + Sync + 'static>(
        &self,
        (kind, ns, name): (&str, &str, &str),
        write: impl std::future::Future<Output = kube::Result<K>>,
    ) -> kube::Result<K> {
        self.wrote(kind, ns, name, None);
        let written = write.await?;
        let keep = self.keeping.lock().expect("own writes lock").contains(kind);
        let object = keep.then(|| {
            let mut kept = written.clone();
            // As a cache keeps it: the managed fields alone, parsed, can weigh more than the
            // rest of the object.
            crate::controllers::unread_metadata(kept.meta_mut());
            Arc::new(kept) as Arc<dyn Any + Send + Sync>
        });
        let version = written.meta().resource_version.as_deref();
        self.record(kind, ns, name, version, object);
        Ok(written)
    }

    /// The object this process last wrote of `kind` `ns`/`name`, if it is kept and of
    /// resource version `version` (what the cache holds).
    fn kept<K: Clone + 'static>(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
        version: &str,
    ) -> Option<K> {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        let written = self.written.lock().expect("own writes lock");
        let w = written.last.get(&key)?;
        if w.version != version || w.at.elapsed() >= KEEP {
            return None;
        }
        w.object.as_ref()?.downcast_ref::<K>().cloned()
    }

    /// Whether the cached object (of resource version `cached`) includes this process's last
    /// write to it. An object caught up is forgotten, so the map holds only writes in flight.
    pub fn freshness(&self, kind: &str, ns: &str, name: &str, cached: Option<&str>) -> Freshness {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        let mut written = self.written.lock().expect("own writes lock");
        let Some(w) = written.last.get_mut(&key) else {
            return Freshness::Current;
        };
        let order = cached.and_then(|c| compare(c, &w.version));
        let verdict = match order {
            Some(Ordering::Less) if w.at.elapsed() < PATIENCE => Freshness::Behind,
            Some(Ordering::Less) | None => Freshness::Unknown,
            Some(Ordering::Equal | Ordering::Greater) => Freshness::Current,
        };
        // A kept object stays while the cache holds its version (the reconciles that follow
        // read it); otherwise the write is forgotten once the cache is past it.
        let kept = w.object.is_some() && order == Some(Ordering::Equal);
        w.caught_up |= kept;
        if verdict != Freshness::Behind && !kept {
            written.last.remove(&key);
        }
        verdict
    }

    /// Forgets a deleted object.
    pub fn forget(&self, kind: &str, ns: &str, name: &str) {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        self.written
            .lock()
            .expect("own writes lock")
            .last
            .remove(&key);
    }

    /// Moves every write `by` into the past (for tests of what time does).
    #[cfg(test)]
    fn age(&self, by: Duration) {
        let mut written = self.written.lock().expect("own writes lock");
        for w in written.last.values_mut() {
            w.at -= by;
        }
        for (at, _) in &mut written.kept {
            *at -= by;
        }
    }

    /// How many writes are waited for (for tests and the bound on memory).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.written.lock().expect("own writes lock").last.len()
    }
}

/// When a reconcile whose cache was behind looks again, if no watch event woke it first.
pub const RECHECK: Duration = Duration::from_secs(5);

/// The object a reconcile works on.
pub enum Read<K> {
    /// As the cache holds it (or, where the cache cannot be judged, as the API server does).
    Object(K),
    /// The cache has not seen this process's last write yet: its watch event wakes the
    /// object again.
    Behind,
    /// Deleted meanwhile.
    Gone,
}

/// The object to reconcile for `cached`: the cached object itself unless the cache is behind
/// this process's last status write to it (see the module), read fresh when that cannot be
/// told.
pub async fn read<K: Owner>(ctx: &Context, cached: K) -> Result<Read<K>> {
    let kind = K::kind(&());
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    match ctx
        .own_writes
        .freshness(&kind, &ns, &name, cached.resource_version().as_deref())
    {
        Freshness::Current => Ok(Read::Object(cached)),
        Freshness::Behind => Ok(Read::Behind),
        Freshness::Unknown => Ok(Api::<K>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await?
            .map_or(Read::Gone, Read::Object)),
    }
}

/// The whole object for `cached`, a cached copy that holds only part of it (a kind whose
/// cache is slim: see the module): the object this process last wrote if the cache holds
/// that version, else read from the API server (through the guard: a malformed object is
/// the caller's to report): from its watch cache, not older than the cached version, once
/// the cache holds this process's last write, else the latest. `Behind` as [`read`] says it.
pub async fn read_whole<K>(
    ctx: &Context,
    cached: &impl kube::Resource,
) -> Result<Read<DeserializeGuard<K>>>
where
    K: Owner + Send + Sync + 'static,
{
    let kind = K::kind(&());
    let ns = cached.meta().namespace.clone().unwrap_or_default();
    let name = cached.meta().name.clone().unwrap_or_default();
    let version = cached.meta().resource_version.as_deref();
    let api = Api::<DeserializeGuard<K>>::namespaced(ctx.client.clone(), &ns);
    let read = match ctx.own_writes.freshness(&kind, &ns, &name, version) {
        Freshness::Behind => return Ok(Read::Behind),
        Freshness::Current => {
            if let Some(obj) = version.and_then(|v| ctx.own_writes.kept::<K>(&kind, &ns, &name, v))
            {
                return Ok(Read::Object(DeserializeGuard(Ok(obj))));
            }
            // The cache holds this process's last write, so any version not older than the
            // cached one will do: the API server's watch cache answers, not etcd.
            match version {
                Some(v) => api.get_with(&name, &kube::api::GetParams::at(v)).await,
                None => api.get(&name).await,
            }
        }
        // The latest version, from etcd.
        Freshness::Unknown => api.get(&name).await,
    };
    match read {
        Ok(obj) => Ok(Read::Object(obj)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Read::Gone),
        Err(e) => Err(e.into()),
    }
}

/// Compares two resource versions as KEP-5504 defines them: decimal integers without leading
/// zeros, so the longer one is larger and equal lengths compare digit by digit. `None` when
/// either is not such an integer.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let valid = |v: &str| {
        !v.is_empty()
            && v.bytes().all(|c| c.is_ascii_digit())
            && !(v.len() > 1 && v.starts_with('0'))
    };
    if !valid(a) || !valid(b) {
        return None;
    }
    Some(a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_versions_compare_as_integers_of_any_length() {
        assert_eq!(compare("9", "10"), Some(Ordering::Less), "not as text");
        assert_eq!(compare("123", "123"), Some(Ordering::Equal));
        assert_eq!(
            compare("18446744073709551616", "18446744073709551615"),
            Some(Ordering::Greater),
            "beyond u64"
        );
        assert_eq!(compare("", "1"), None);
        assert_eq!(
            compare("01", "1"),
            None,
            "leading zeros are not resource versions"
        );
        assert_eq!(
            compare("abc", "1"),
            None,
            "an opaque version is not comparable"
        );
    }

    #[test]
    fn a_cache_behind_the_last_status_write_waits_and_a_caught_up_one_is_current() {
        let w = OwnWrites::default();
        assert_eq!(
            w.freshness("TrainingRun", "ml", "a", Some("5")),
            Freshness::Current,
            "never written: the cache is all there is"
        );
        w.wrote("TrainingRun", "ml", "a", Some("100"));
        assert_eq!(
            w.freshness("TrainingRun", "ml", "a", Some("99")),
            Freshness::Behind
        );
        assert_eq!(
            w.freshness("TrainingRun", "ml", "b", Some("99")),
            Freshness::Current,
            "another object"
        );
        assert_eq!(
            w.freshness("Dataset", "ml", "a", Some("99")),
            Freshness::Current,
            "another kind"
        );
        assert_eq!(
            w.freshness("TrainingRun", "ml", "a", Some("100")),
            Freshness::Current
        );
        assert_eq!(w.len(), 0, "caught up: forgotten");
        // Somebody else's later write counts as caught up too.
        w.wrote("TrainingRun", "ml", "a", Some("200"));
        assert_eq!(
            w.freshness("TrainingRun", "ml", "a", Some("250")),
            Freshness::Current
        );
    }

    #[test]
    fn opaque_versions_or_a_lost_write_result_read_fresh() {
        let w = OwnWrites::default();
        w.wrote("TrainingRun", "ml", "a", Some("opaque-1"));
        assert_eq!(
            w.freshness("TrainingRun", "ml", "a", Some("opaque-0")),
            Freshness::Unknown
        );
        assert_eq!(w.len(), 0, "read fresh once, then the cache again");
        w.wrote("TrainingRun", "ml", "a", None);
        assert_eq!(
            w.freshness("TrainingRun", "ml", "a", Some("7")),
            Freshness::Unknown
        );
        w.wrote("TrainingRun", "ml", "a", Some("7"));
        w.forget("TrainingRun", "ml", "a");
        assert_eq!(w.len(), 0, "a deleted object leaves nothing behind");
    }

    fn job(version: &str) -> k8s_openapi::api::batch::v1::Job {
        let mut job = k8s_openapi::api::batch::v1::Job::default();
        job.metadata.resource_version = Some(version.into());
        job.metadata.managed_fields = Some(vec![Default::default()]);
        job
    }

    #[tokio::test]
    async fn a_kept_write_is_the_object_while_the_cache_holds_its_version() {
        let w = OwnWrites::default();
        w.keep_objects_of("Job");
        let ok = |v: &str| std::future::ready(Ok(job(v)));
        w.write(("Job", "ml", "a"), ok("100")).await.unwrap();
        assert_eq!(
            w.freshness("Job", "ml", "a", Some("99")),
            Freshness::Behind,
            "the cache has not seen it yet"
        );
        assert_eq!(
            w.freshness("Job", "ml", "a", Some("100")),
            Freshness::Current
        );
        let kept: Option<k8s_openapi::api::batch::v1::Job> = w.kept("Job", "ml", "a", "100");
        let kept = kept.expect("the written object");
        assert_eq!(kept.metadata.resource_version.as_deref(), Some("100"));
        assert!(
            kept.metadata.managed_fields.is_none(),
            "kept as a cache keeps it"
        );
        // Read again (the next reconcile, woken by another change): still there.
        assert_eq!(
            w.freshness("Job", "ml", "a", Some("100")),
            Freshness::Current
        );
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Job", "ml", "a", "100")
                .is_some()
        );
        // Another version in the cache (somebody else wrote): not this object, and forgotten.
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Job", "ml", "a", "101")
                .is_none()
        );
        assert_eq!(
            w.freshness("Job", "ml", "a", Some("101")),
            Freshness::Current
        );
        assert_eq!(w.len(), 0);
        // Of the wrong type, or of a kind that does not keep its objects: nothing.
        w.write(("Job", "ml", "b"), ok("7")).await.unwrap();
        assert!(
            w.kept::<ciclo_api::Dataset>("Job", "ml", "b", "7")
                .is_none()
        );
        w.write(("Pod", "ml", "c"), ok("8")).await.unwrap();
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Pod", "ml", "c", "8")
                .is_none()
        );
        // After KEEP the object goes, at the next write of a kept kind, but not the version:
        // a cache still behind the write waits for it.
        w.write(("Job", "ml", "d"), ok("300")).await.unwrap();
        w.age(KEEP);
        w.write(("Job", "ml", "e"), ok("301")).await.unwrap();
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Job", "ml", "d", "300")
                .is_none()
        );
        assert_eq!(
            w.freshness("Job", "ml", "d", Some("299")),
            Freshness::Behind
        );
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Job", "ml", "e", "301")
                .is_some(),
            "a fresh one stays"
        );
        // An object written again is kept from its new write: the old one's turn to go does
        // not take the new one with it.
        w.age(KEEP);
        w.write(("Job", "ml", "f"), ok("400")).await.unwrap();
        w.age(KEEP - Duration::from_secs(1));
        w.write(("Job", "ml", "f"), ok("401")).await.unwrap();
        w.age(Duration::from_secs(1));
        w.write(("Job", "ml", "g"), ok("402")).await.unwrap();
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Job", "ml", "e", "301")
                .is_none(),
            "past KEEP"
        );
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Job", "ml", "f", "401")
                .is_some()
        );
        // A kept write the cache was seen holding leaves nothing behind once it goes; one
        // never seen keeps its version.
        w.age(KEEP);
        w.write(("Job", "ml", "h"), ok("500")).await.unwrap();
        w.write(("Job", "ml", "i"), ok("501")).await.unwrap();
        assert_eq!(
            w.freshness("Job", "ml", "h", Some("500")),
            Freshness::Current
        );
        let before = w.len();
        w.age(KEEP);
        w.write(("Job", "ml", "j"), ok("502")).await.unwrap();
        assert_eq!(w.len(), before, "h gone, j added, i kept as a version");
        assert_eq!(
            w.freshness("Job", "ml", "i", Some("500")),
            Freshness::Behind,
            "i's write (501) is still known past KEEP: a cache behind it waits"
        );
        // A failed write keeps nothing, and reads fresh.
        let failed = std::future::ready(Err::<k8s_openapi::api::batch::v1::Job, _>(
            kube::Error::LinesCodecMaxLineLengthExceeded,
        ));
        assert!(w.write(("Job", "ml", "b"), failed).await.is_err());
        assert!(
            w.kept::<k8s_openapi::api::batch::v1::Job>("Job", "ml", "b", "7")
                .is_none()
        );
        assert_eq!(w.freshness("Job", "ml", "b", Some("7")), Freshness::Unknown);
    }
}
