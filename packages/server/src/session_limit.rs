//! Caps on open WebSocket sessions, for the instance and per tenant, so that
//! one tenant (or a reconnect storm) cannot take every socket and all memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jobwire_core::TenantId;

/// The open sessions, counted.
#[derive(Debug)]
pub(crate) struct SessionLimit {
    max: usize,
    max_per_tenant: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_tenant: HashMap<TenantId, usize>,
}

/// One open session's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct SessionSlot {
    tenant: TenantId,
    open: Arc<Mutex<Open>>,
}

impl SessionLimit {
    pub(crate) fn new(max: usize, max_per_tenant: usize) -> Self {
        Self {
            max,
            max_per_tenant,
            open: Arc::default(),
        }
    }

    /// A place for one more session of `tenant`, or why there is none.
    pub(crate) fn acquire(&self, tenant: &TenantId) -> Result<SessionSlot, String> {
        let mut open = lock(&self.open);
        if open.total >= self.max {
            return Err(format!(
                "this server has its limit of {} WebSocket sessions open; try again later",
                self.max
            ));
        }
        let count = open.per_tenant.get(tenant).copied().unwrap_or(0);
        if count >= self.max_per_tenant {
            return Err(format!(
                "tenant {tenant} has its limit of {} WebSocket sessions open on this server; \
                 try again later",
                self.max_per_tenant
            ));
        }
        *open.per_tenant.entry(tenant.clone()).or_default() += 1;
        open.total += 1;
        Ok(SessionSlot {
            tenant: tenant.clone(),
            open: Arc::clone(&self.open),
        })
    }
}

impl SessionLimit {
    /// The sessions open now, one count per tenant that has any.
    pub(crate) fn open_per_tenant(&self) -> Vec<usize> {
        lock(&self.open).per_tenant.values().copied().collect()
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total -= 1;
        if let Some(count) = open.per_tenant.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                open.per_tenant.remove(&self.tenant);
            }
        }
    }
}

fn lock(open: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    // A poisoned lock means a panic between two counter updates; the counts stand.
    open.lock().unwrap_or_else(|e| e.into_inner())
}
