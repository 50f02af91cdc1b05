//! The default replica identity: what `sync.replica_id` is when it is not set, and how
//! to recognise identities of that shape left behind by earlier processes on this host.
//!
//! The default is `HOST:PID:RAND` (eight random hex digits). `HOST:PID` alone collides
//! where every process is PID 1 (containers) and across restarts that reuse a PID; the
//! random part makes every process distinct, while `HOST` and `PID` still let a new
//! daemon tell which earlier local daemons are gone (see [`local_owner_is_gone`]).
//! Identities of the older `HOST:PID` shape are recognised too. The random part is
//! drawn once per process, so loading the configuration again keeps the identity.

/// This process's default identity: drawn once, then the same for every load, so a
/// config reload does not rename the replica.
pub(crate) fn default_replica_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(new_replica_id).clone()
}

/// A fresh identity of the default shape.
pub(crate) fn new_replica_id() -> String {
    format!(
        "{}:{}:{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The host name, as the kernel has it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// What a replica's requested cycles add to its id for their leases (see
/// [`requests_owner`]).
pub(crate) const REQUESTS_SUFFIX: &str = "/requests";

/// The lease owner of `replica_id`'s requested cycles: they run beside its scheduled
/// cycles, and each kind gives back only its own leases.
pub(crate) fn requests_owner(replica_id: &str) -> String {
    format!("{replica_id}{REQUESTS_SUFFIX}")
}

/// The replica behind a lease owner: the owner itself, or a requested cycle's replica.
pub(crate) fn replica_of_owner(owner: &str) -> &str {
    owner.strip_suffix(REQUESTS_SUFFIX).unwrap_or(owner)
}

/// The PID inside an identity of the default shape (`HOST:PID:RAND` or `HOST:PID`)
/// naming `host`; `None` for any other identity.
pub(crate) fn default_shape_pid(id: &str, host: &str) -> Option<u32> {
    let rest = id.strip_prefix(host)?.strip_prefix(':')?;
    let (pid, suffix) = match rest.split_once(':') {
        Some((pid, rand)) => (pid, Some(rand)),
        None => (rest, None),
    };
    if let Some(rand) = suffix {
        if rand.len() != 8 || !rand.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
    }
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The `sync_runs.replica_id` / lease-owner LIKE pattern covering this host's default
/// identities (`HOST:%`) when `replica_id` has the default shape; else `replica_id`
/// itself (a named replica only ever cleans up after its own name).
pub(crate) fn own_runs_pattern(replica_id: &str) -> String {
    let host = hostname();
    match default_shape_pid(replica_id, &host) {
        Some(_) => format!("{host}:%"),
        None => replica_id.to_string(),
    }
}

/// Whether `owner` (a lease owner, a requested cycle's included, or a run's replica id)
/// names a daemon of this host that no longer runs: a default-shaped identity other than `own_id`, whose PID is either
/// no live process or this very process (a container restarted with the same host
/// name, where every daemon is PID 1).
pub(crate) fn local_owner_is_gone(owner: &str, own_id: &str) -> bool {
    let owner = replica_of_owner(owner);
    if owner == own_id {
        return false;
    }
    let Some(pid) = default_shape_pid(owner, &hostname()) else {
        return false;
    };
    pid == std::process::id() || !std::path::Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_are_distinct_and_recognised() {
        let a = new_replica_id();
        let b = new_replica_id();
        assert_ne!(a, b, "two processes with the same PID must still differ");
        assert_eq!(
            default_replica_id(),
            default_replica_id(),
            "stable across loads"
        );
        let host = hostname();
        assert_eq!(default_shape_pid(&a, &host), Some(std::process::id()));
        assert_eq!(own_runs_pattern(&a), format!("{host}:%"));
    }

    #[test]
    fn shapes() {
        assert_eq!(default_shape_pid("h:1:0a1b2c3d", "h"), Some(1));
        assert_eq!(default_shape_pid("h:42", "h"), Some(42));
        assert_eq!(default_shape_pid("h:42:xyz", "h"), None);
        assert_eq!(default_shape_pid("hx:42", "h"), None);
        assert_eq!(default_shape_pid("eu-replica-1", "h"), None);
        assert_eq!(own_runs_pattern("eu-replica-1"), "eu-replica-1");
    }

    #[test]
    fn gone_owners() {
        let host = hostname();
        let own = default_replica_id();
        assert!(!local_owner_is_gone(&own, &own));
        assert!(
            !local_owner_is_gone(&requests_owner(&own), &own),
            "this process's requested cycles are alive"
        );
        // An earlier incarnation with this very PID (containers: always PID 1).
        let earlier = format!("{host}:{}:00000000", std::process::id());
        assert!(local_owner_is_gone(&earlier, &own));
        assert!(local_owner_is_gone(&requests_owner(&earlier), &own));
        // PID 4194304 is past the kernel's maximum PID: never a live process.
        assert!(local_owner_is_gone(
            &format!("{host}:4194304:0badf00d"),
            &own
        ));
        assert!(!local_owner_is_gone("other-host:1:00000000", &own));
        assert!(!local_owner_is_gone("named", &own));
    }
}
