/* Giving the processor away while waiting for another thread (no busy spinning: on a
 * machine shared with other processes, a spinning waiter takes the time slice the thread
 * it waits for needs). */
#ifndef FASTALS_SYNC_H
#define FASTALS_SYNC_H

/* A lock: OpenMP's, or nothing in a serial build (one thread, nothing to exclude). */
#ifdef _OPENMP
#include <omp.h>
typedef omp_lock_t fastals_lock_t;
static inline void fastals_lock_init(fastals_lock_t *lock) { omp_init_lock(lock); }
static inline void fastals_lock_destroy(fastals_lock_t *lock) { omp_destroy_lock(lock); }
static inline void fastals_lock(fastals_lock_t *lock) { omp_set_lock(lock); }
static inline void fastals_unlock(fastals_lock_t *lock) { omp_unset_lock(lock); }
#else
typedef int fastals_lock_t;
static inline void fastals_lock_init(fastals_lock_t *lock) { (void)lock; }
static inline void fastals_lock_destroy(fastals_lock_t *lock) { (void)lock; }
static inline void fastals_lock(fastals_lock_t *lock) { (void)lock; }
static inline void fastals_unlock(fastals_lock_t *lock) { (void)lock; }
#endif

#if defined(_WIN32)
#include <windows.h>
static inline void fastals_yield(void) { SwitchToThread(); }
#else
#include <sched.h>
static inline void fastals_yield(void) { sched_yield(); }
#endif

#endif
