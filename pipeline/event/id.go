package event

// NewID derives the stable ID of an event from what identifies it on its node: the kernel
// timestamp, thread, CPU and type. The same kernel event always gets the same ID, so a
// re-delivered or re-recorded event is written once (FNV-1a, stable across processes).
func NewID(node string, ktimeNs uint64, tid, cpu uint32, t Type) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(node); i++ {
		h ^= uint64(node[i])
		h *= prime
	}
	mix := func(v uint64, n int) {
		for i := 0; i < n; i++ {
			h ^= v & 0xff
			h *= prime
			v >>= 8
		}
	}
	mix(ktimeNs, 8)
	mix(uint64(tid), 4)
	mix(uint64(cpu), 4)
	mix(uint64(t), 1)
	return h
}
