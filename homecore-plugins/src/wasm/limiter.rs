//! The store's resource limiter: enforces the plugin's memory and table limits and records
//! which one was hit, so a failure is classified from that record rather than from Wasmtime's
//! message text (docs/adr/0006-wasmtime-runtime.md).

use wasmtime::ResourceLimiter;

use crate::GuestFailure;

/// Memory and table limits of one plugin instance, and the last limit it hit.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    /// The size the guest last asked its memory to grow to (for a failure after allowing it).
    memory_requested: usize,
    /// The size the guest last asked a table to grow to.
    table_requested: usize,
    /// The limit hit since the last [`Limiter::take_hit`].
    hit: Option<GuestFailure>,
}

/// Most instances, memories and tables one store may create.
const INSTANCES: usize = 1;
const MEMORIES: usize = 1;
const TABLES: usize = 8;

impl Limiter {
    pub(crate) fn new(memory_bytes: usize, table_elements: usize) -> Self {
        Self {
            memory_bytes,
            table_elements,
            memory_requested: 0,
            table_requested: 0,
            hit: None,
        }
    }

    /// The limit hit since the last call, if any; clears the record.
    pub(crate) fn take_hit(&mut self) -> Option<GuestFailure> {
        self.hit.take()
    }

    /// Records `failure` and returns it as the error that makes the growth a trap.
    fn refuse(&mut self, failure: GuestFailure) -> wasmtime::Result<bool> {
        self.hit = Some(failure.clone());
        Err(wasmtime::Error::new(failure))
    }

    fn memory_hit(&self, limit: usize) -> GuestFailure {
        GuestFailure::MemoryLimit {
            limit_bytes: limit as u64,
            requested_bytes: self.memory_requested as u64,
        }
    }

    fn table_hit(&self, limit: usize) -> GuestFailure {
        GuestFailure::TableLimit {
            limit_elements: limit as u64,
            requested_elements: self.table_requested as u64,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.memory_requested = desired;
        let limit = maximum.map_or(self.memory_bytes, |max| max.min(self.memory_bytes));
        if desired > limit {
            // Growing past the limit traps rather than returning -1: a guest looping on a failed
            // grow would otherwise spin to its deadline.
            return self.refuse(self.memory_hit(limit));
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed by the limit but refused by the allocator (e.g. a pooling slot's size).
        self.hit = Some(self.memory_hit(self.memory_bytes));
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.table_requested = desired;
        let limit = maximum.map_or(self.table_elements, |max| max.min(self.table_elements));
        if desired > limit {
            return self.refuse(self.table_hit(limit));
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = Some(self.table_hit(self.table_elements));
        Err(error)
    }

    fn instances(&self) -> usize {
        INSTANCES
    }

    fn tables(&self) -> usize {
        TABLES
    }

    fn memories(&self) -> usize {
        MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_growth_is_recorded_with_its_limit_and_request() {
        let mut l = Limiter::new(1 << 20, 100);
        assert!(
            l.memory_growing(0, 1 << 16, None)
                .expect("within the limit")
        );
        assert!(l.take_hit().is_none());
        let err = l
            .memory_growing(1 << 16, 2 << 20, None)
            .expect_err("past the limit");
        let hit = l.take_hit().expect("recorded");
        assert_eq!(
            hit,
            GuestFailure::MemoryLimit {
                limit_bytes: 1 << 20,
                requested_bytes: 2 << 20
            }
        );
        assert_eq!(err.downcast_ref::<GuestFailure>(), Some(&hit));
        assert!(
            l.table_growing(10, 50, Some(20)).is_err(),
            "the module's maximum is lower"
        );
        assert_eq!(
            l.take_hit(),
            Some(GuestFailure::TableLimit {
                limit_elements: 20,
                requested_elements: 50
            })
        );
    }
}
