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

use crate::context::Context;
use crate::error::Result;
use crate::status::Owner;
use kube::ResourceExt as _;
use kube::api::Api;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a write is waited for. A watch that lost its connection relists and delivers the
/// write later; past this, the object is read fresh once instead.
const PATIENCE: Duration = Duration::from_secs(30);

/// The resource versions this process's status writes produced, per object.
#[derive(Default)]
pub struct OwnWrites {
    written: Mutex<HashMap<Key, (String, Instant)>>,
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
    /// Records that this process wrote `kind` `ns`/`name`, which then had `resource_version`.
    pub fn wrote(&self, kind: &str, ns: &str, name: &str, resource_version: Option<&str>) {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        let mut written = self.written.lock().expect("own writes lock");
        match resource_version {
            Some(rv) => written.insert(key, (rv.to_string(), Instant::now())),
            // A write whose result is unknown: nothing to wait for, read fresh next time.
            None => written.insert(key, (String::new(), Instant::now())),
        };
    }

    /// Makes `write` (a write of `kind` `ns`/`name` answered with the object) and records the
    /// version it made. Until the answer comes, and if none does (a write that timed out may
    /// still have been made), the object is read fresh next time.
    pub async fn write<K: kube::Resource>(
        &self,
        (kind, ns, name): (&str, &str, &str),
        write: impl std::future::Future<Output = kube::Result<K>>,
    ) -> kube::Result<K> {
        self.wrote(kind, ns, name, None);
        let written = write.await?;
        self.wrote(kind, ns, name, written.meta().resource_version.as_deref());
        Ok(written)
    }

    /// Whether the cached object (of resource version `cached`) includes this process's last
    /// write to it. An object caught up is forgotten, so the map holds only writes in flight.
    pub fn freshness(&self, kind: &str, ns: &str, name: &str, cached: Option<&str>) -> Freshness {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        let mut written = self.written.lock().expect("own writes lock");
        let Some((wrote, at)) = written.get(&key) else {
            return Freshness::Current;
        };
        let verdict = match cached.and_then(|c| compare(c, wrote)) {
            Some(Ordering::Less) if at.elapsed() < PATIENCE => Freshness::Behind,
            Some(Ordering::Less) | None => Freshness::Unknown,
            Some(Ordering::Equal | Ordering::Greater) => Freshness::Current,
        };
        if verdict != Freshness::Behind {
            written.remove(&key);
        }
        verdict
    }

    /// Forgets a deleted object.
    pub fn forget(&self, kind: &str, ns: &str, name: &str) {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        self.written.lock().expect("own writes lock").remove(&key);
    }

    /// How many writes are waited for (for tests and the bound on memory).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.written.lock().expect("own writes lock").len()
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
}
