# A bounded min-heap of the best (score, id) pairs, for the top-N kernels (_topn.pxi) and the
# similarity kernels (_similarity.pyx). The worst kept pair sits at the root, so a candidate
# is compared with one pair; "better" means the larger score, and among equal scores the
# lower id, so the kept set and its order are exact and deterministic. Everything is inline:
# the heap is in the hot loop of top-N selection. Cimports _common (the fused types) only.
from fastals._kernels._common cimport floating, index_t


cdef inline bint worse(floating score_a, index_t id_a, floating score_b,
                       index_t id_b) noexcept nogil:
    """Whether (score_a, id_a) ranks below (score_b, id_b)."""
    return score_a < score_b or (score_a == score_b and id_a > id_b)


cdef inline void sift_down(floating* scores, index_t* ids, int parent, int count) noexcept nogil:
    """Restore the heap of `count` pairs below position `parent` (moving a hole down)."""
    cdef int child
    cdef floating s = scores[parent]
    cdef index_t i = ids[parent]
    while True:
        child = 2 * parent + 1
        if child >= count:
            break
        if child + 1 < count and worse(scores[child + 1], ids[child + 1], scores[child],
                                       ids[child]):
            child += 1
        if not worse(scores[child], ids[child], s, i):
            break
        scores[parent] = scores[child]
        ids[parent] = ids[child]
        parent = child
    scores[parent] = s
    ids[parent] = i


cdef inline int push(floating* scores, index_t* ids, int count, floating s,
                     index_t j) noexcept nogil:
    """Add (s, j) to a heap of `count` pairs that has room for one more; returns count + 1."""
    cdef int pos = count, parent
    while pos > 0:  # sift up
        parent = (pos - 1) >> 1
        if not worse(s, j, scores[parent], ids[parent]):
            break
        scores[pos] = scores[parent]
        ids[pos] = ids[parent]
        pos = parent
    scores[pos] = s
    ids[pos] = j
    return count + 1


cdef inline void replace_worst(floating* scores, index_t* ids, int count, floating s,
                               index_t j) noexcept nogil:
    """Put (s, j) in place of the root (the worst pair) of a heap of `count` pairs."""
    scores[0] = s
    ids[0] = j
    sift_down(scores, ids, 0, count)


cdef inline int offer(floating* scores, index_t* ids, int count, int K, floating s,
                      index_t j) noexcept nogil:
    """Offer (s, j) to a heap holding `count` of at most K pairs; returns the new count."""
    if count < K:
        return push(scores, ids, count, s, j)
    if worse(scores[0], ids[0], s, j):
        replace_worst(scores, ids, count, s, j)
    return count


cdef inline void sort_best_first(floating* scores, index_t* ids, int count) noexcept nogil:
    """Order a heap's `count` pairs best first (heap sort: the worst moves to the back)."""
    cdef int end
    cdef floating s
    cdef index_t i
    for end in range(count - 1, 0, -1):
        s = scores[0]; scores[0] = scores[end]; scores[end] = s
        i = ids[0]; ids[0] = ids[end]; ids[end] = i
        sift_down(scores, ids, 0, end)


cdef inline void sort_by_id(floating* scores, index_t* ids, int count) noexcept nogil:
    """Order the first `count` pairs by increasing id (heapsort on the ids)."""
    cdef int start, end, root, child
    cdef floating s
    cdef index_t i
    if count < 2:
        return
    # build a max-heap on ids, then move the largest to the back
    start = count // 2
    end = count
    while end > 1:
        if start > 0:
            start -= 1
            root = start
        else:
            end -= 1
            s = scores[0]; scores[0] = scores[end]; scores[end] = s
            i = ids[0]; ids[0] = ids[end]; ids[end] = i
            root = 0
        s = scores[root]
        i = ids[root]
        while True:
            child = 2 * root + 1
            if child >= end:
                break
            if child + 1 < end and ids[child + 1] > ids[child]:
                child += 1
            if ids[child] <= i:
                break
            scores[root] = scores[child]
            ids[root] = ids[child]
            root = child
        scores[root] = s
        ids[root] = i
