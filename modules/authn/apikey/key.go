package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"strings"
)

// Key format: `agk_` + 32 base62 characters from crypto/rand + a 6-character
// base62 CRC32 of everything before it, e.g.
// `agk_Xk3m9QpR2sT7vW1yZ4aB6cD8eF0gH2jK1a2B3c`. The fixed prefix and checksum
// let secret scanners recognise a leaked key without false positives (the
// GitHub token scheme), and let the gateway reject a mistyped or forged key
// before touching storage.
const (
	keyPrefix    = "agk_"
	randomLen    = 32 // 32 × log2(62) ≈ 190 bits of entropy
	checksumLen  = 6  // 62^6 > 2^32
	idLen        = 8  // the key id is the first 8 random characters
	keyLen       = len(keyPrefix) + randomLen + checksumLen
	base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

var (
	errKeyFormat   = errors.New("not an atlasgate API key")
	errKeyChecksum = errors.New("API key checksum mismatch")
)

// random is the randomness source of new keys (tests replace it).
var random = rand.Read

// newKey returns a fresh key.
func newKey() (string, error) {
	var b strings.Builder
	b.Grow(keyLen)
	b.WriteString(keyPrefix)
	buf := make([]byte, 64)
	for b.Len() < len(keyPrefix)+randomLen {
		if _, err := random(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			// Rejection sampling: 248 = 4×62, so c%62 is uniform below it.
			if c < 248 && b.Len() < len(keyPrefix)+randomLen {
				b.WriteByte(base62Digits[c%62])
			}
		}
	}
	b.WriteString(checksum(b.String()))
	return b.String(), nil
}

// checksum is the CRC32 (IEEE) of s as 6 zero-padded base62 digits.
func checksum(s string) string {
	n := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, checksumLen)
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = base62Digits[n%62]
		n /= 62
	}
	return string(out)
}

// looksLikeKey reports whether s carries the key prefix: such a credential is
// ours to judge, anything else is left to other authenticators.
func looksLikeKey(s string) bool { return strings.HasPrefix(s, keyPrefix) }

// parseKey checks the format and checksum of key and returns its id. It does
// no I/O, so malformed and forged keys cost nothing.
func parseKey(key string) (id string, err error) {
	if len(key) != keyLen || !strings.HasPrefix(key, keyPrefix) {
		return "", errKeyFormat
	}
	for i := len(keyPrefix); i < keyLen; i++ {
		if strings.IndexByte(base62Digits, key[i]) < 0 {
			return "", errKeyFormat
		}
	}
	body := key[:keyLen-checksumLen]
	id = key[len(keyPrefix) : len(keyPrefix)+idLen]
	if checksum(body) != key[keyLen-checksumLen:] {
		return id, errKeyChecksum
	}
	return id, nil
}

// validID reports whether id can be a key id (and so is safe in a storage key).
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if strings.IndexByte(base62Digits, id[i]) < 0 {
			return false
		}
	}
	return true
}

// hashKey is what storage holds instead of the key. A plain SHA-256 is enough:
// slow, salted password hashes exist to protect guessable, low-entropy secrets
// from offline guessing, but a key carries 190 random bits, so inverting its
// SHA-256 is as infeasible as guessing the key, and a fast hash keeps every
// request cheap.
func hashKey(key string) [sha256.Size]byte { return sha256.Sum256([]byte(key)) }
