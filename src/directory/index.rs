//! The sign-in index: for each tenant, the numbers whose `mobile` method is `ready`, in memory,
//! so that a sign-in start costs a hash lookup and no database read.
//!
//! The backend replaces a user's or a whole tenant's entries after every committed write. Each
//! entry carries a generation: a flow started on one generation completes only while the entry
//! still has it, so changing or deleting the number, disabling sign-in or the account, or any
//! policy change that takes the user out of scope kills a pending code at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::phone::PhoneNumber;

/// Who signs in with a ready number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyEntry {
    pub user_id: String,
    pub display_name: String,
    pub user_principal_name: String,
    /// Changes whenever the number stops being this user's ready sign-in number.
    pub generation: u64,
}

/// One tenant's ready numbers, and each user's (a user has one mobile method, so one number).
#[derive(Default)]
struct TenantIndex {
    /// Shared with the flows that started on it (a lookup clones no string).
    by_number: HashMap<PhoneNumber, Arc<ReadyEntry>>,
    by_user: HashMap<String, PhoneNumber>,
}

type Tenants = HashMap<String, TenantIndex>;

#[derive(Default)]
pub struct ReadyIndex {
    tenants: RwLock<Tenants>,
    next_generation: AtomicU64,
}

/// A ready number as a refresh computes it, before it gets a generation.
#[derive(Debug, Clone)]
pub struct Ready {
    pub number: PhoneNumber,
    pub user_id: String,
    pub display_name: String,
    pub user_principal_name: String,
}

impl ReadyIndex {
    pub fn lookup(&self, tid: &str, phone: &PhoneNumber) -> Option<Arc<ReadyEntry>> {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        tenants.get(tid)?.by_number.get(phone).cloned()
    }

    /// Replaces every entry of tenant `tid` by `ready`.
    pub fn replace_tenant(&self, tid: &str, ready: Vec<Ready>) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let old = tenants.remove(tid).unwrap_or_default();
        let mut next = TenantIndex::default();
        for entry in ready {
            let kept = self.keep_or_new(old.by_number.get(&entry.number), &entry);
            next.by_user
                .insert(entry.user_id.clone(), entry.number.clone());
            next.by_number.insert(entry.number, kept);
        }
        tenants.insert(tid.to_owned(), next);
    }

    /// Replaces the entries of user `uid` in tenant `tid` by `ready` (at most one: a user has one
    /// mobile method).
    pub fn replace_user(&self, tid: &str, uid: &str, ready: Option<Ready>) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let tenant = tenants.entry(tid.to_owned()).or_default();
        let old = tenant
            .by_user
            .remove(uid)
            .and_then(|number| tenant.by_number.remove_entry(&number));
        if let Some(entry) = ready {
            let previous = old.as_ref().filter(|(number, _)| *number == entry.number);
            let kept = self.keep_or_new(previous.map(|(_, e)| e), &entry);
            // The number may have been another user's a moment ago (deleted, then re-registered).
            if let Some(displaced) = tenant.by_number.insert(entry.number.clone(), kept)
                && displaced.user_id != uid
            {
                tenant.by_user.remove(&displaced.user_id);
            }
            tenant.by_user.insert(uid.to_owned(), entry.number);
        }
    }

    /// Forgets every tenant not in `tids` (deleted by another process).
    pub fn retain_tenants(&self, tids: &[String]) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        tenants.retain(|tid, _| tids.contains(tid));
    }

    pub fn remove_tenant(&self, tid: &str) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        tenants.remove(tid);
    }

    /// Ready numbers over all tenants.
    pub fn len(&self) -> usize {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        tenants.values().map(|t| t.by_number.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The old entry's generation if the number still belongs to the same user, else a new one.
    fn keep_or_new(&self, old: Option<&Arc<ReadyEntry>>, entry: &Ready) -> Arc<ReadyEntry> {
        let generation = match old {
            Some(old) if old.user_id == entry.user_id => old.generation,
            _ => self.next_generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        Arc::new(ReadyEntry {
            user_id: entry.user_id.clone(),
            display_name: entry.display_name.clone(),
            user_principal_name: entry.user_principal_name.clone(),
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(number: &str, user: &str) -> Ready {
        Ready {
            number: PhoneNumber::parse(number).expect("valid"),
            user_id: user.to_owned(),
            display_name: user.to_uppercase(),
            user_principal_name: format!("{user}@example.com"),
        }
    }

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("valid")
    }

    #[test]
    fn generations_survive_unrelated_refreshes_and_change_with_the_owner() {
        let index = ReadyIndex::default();
        index.replace_tenant(
            "t",
            vec![ready("+31600000001", "a"), ready("+31600000002", "b")],
        );
        let a = index.lookup("t", &phone("+31600000001")).expect("ready");
        index.replace_user("t", "b", None);
        assert!(index.lookup("t", &phone("+31600000002")).is_none());
        index.replace_tenant("t", vec![ready("+31600000001", "a")]);
        assert_eq!(
            index
                .lookup("t", &phone("+31600000001"))
                .map(|e| e.generation),
            Some(a.generation),
            "an unchanged entry keeps its generation"
        );
        // Away and back: a new generation, so a flow from before does not complete.
        index.replace_user("t", "a", None);
        index.replace_user("t", "a", Some(ready("+31600000001", "a")));
        let back = index.lookup("t", &phone("+31600000001")).expect("ready");
        assert_ne!(back.generation, a.generation);
        // The number moved to another user.
        index.replace_user("t", "a", None);
        index.replace_user("t", "c", Some(ready("+31600000001", "c")));
        assert_eq!(
            index
                .lookup("t", &phone("+31600000001"))
                .map(|e| e.user_id.clone()),
            Some("c".to_owned())
        );
        assert!(index.lookup("other", &phone("+31600000001")).is_none());
        assert_eq!(index.len(), 1);
    }
}
