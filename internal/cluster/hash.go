package cluster

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"
)

// Bucket returns the bucket of a subscription id among n: the id is the
// hex of the first 8 bytes of a SHA-256 (cable.SubscriptionID), so its
// value is uniform; other ids are hashed first.
func Bucket(id string, n int) int {
	var v uint64
	if b, err := hex.DecodeString(id); err == nil && len(b) == 8 {
		v = binary.BigEndian.Uint64(b)
	} else {
		h := fnv.New64a()
		h.Write([]byte(id))
		v = h.Sum64()
	}
	return int(v % uint64(n))
}

// LeaseName is the name of a bucket's lease in the store.
func LeaseName(bucket int) string { return "bucket-" + strconv.Itoa(bucket) }

// Owner returns the member that should own bucket by rendezvous hashing:
// the member with the highest score for it. members must not be empty. A
// member's share moves only when members join or leave, and then only the
// buckets it gains or loses.
func Owner(bucket int, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		if s := score(m, bucket); best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best
}

// score is a well-mixed 64-bit hash of (member, bucket).
func score(member string, bucket int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", member, bucket)
	return mix(h.Sum64())
}

// mix is the splitmix64 finalizer: FNV alone leaves the high bits of
// similar inputs correlated.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
