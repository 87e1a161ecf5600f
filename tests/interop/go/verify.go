// Command verify is an independent checker for cleanfeed's signed notes and
// Merkle log, built on Go's golang.org/x/mod/sumdb/note and sumdb/tlog.
//
// It reads one JSON request on stdin and writes one JSON answer on stdout.
// Modes:
//
//	open   {"vkeys": [...], "notes_b64": [...]}
//	       note.Open each note with the given verifier keys.
//	cosig  {"vkey": "...", "notes_b64": [...]}
//	       check the timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature,
//	       signature type 0x04) of the key in vkey (type 0x01 or 0x04); the
//	       note package parses, this program verifies with crypto/ed25519.
//	sign   {"skey": "PRIVATE+KEY+...", "text": "..."}
//	       note.Sign, to compare with cleanfeed's signer byte for byte.
//	vkey   {"name": "...", "public_key_b64": "..."}
//	       note.NewEd25519VerifierKey.
//	tree   {"leaves_b64": [...], "inclusion": [...], "consistency": [...]}
//	       tlog: stored hashes, TreeHash for every size, ProveRecord/ProveTree,
//	       and CheckRecord/CheckTree of the proofs given.
//
// Build without network: GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off
// (Debian's golang-golang-x-mod-dev layout).
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type request struct {
	Mode         string           `json:"mode"`
	Vkeys        []string         `json:"vkeys"`
	Vkey         string           `json:"vkey"`
	NotesB64     []string         `json:"notes_b64"`
	Skey         string           `json:"skey"`
	Text         string           `json:"text"`
	Name         string           `json:"name"`
	PublicKeyB64 string           `json:"public_key_b64"`
	LeavesB64    []string         `json:"leaves_b64"`
	Inclusion    []inclusionReq   `json:"inclusion"`
	Consistency  []consistencyReq `json:"consistency"`
}

type inclusionReq struct {
	Index    int64    `json:"index"`
	Size     int64    `json:"size"`
	ProofB64 []string `json:"proof_b64"`
	RootB64  string   `json:"root_b64"`
	LeafB64  string   `json:"leaf_hash_b64"`
}

type consistencyReq struct {
	From     int64    `json:"from"`
	To       int64    `json:"to"`
	ProofB64 []string `json:"proof_b64"`
	OldB64   string   `json:"old_root_b64"`
	NewB64   string   `json:"new_root_b64"`
}

type sigInfo struct {
	Name string `json:"name"`
	Hash string `json:"hash"`
}

type openResult struct {
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	Text       string    `json:"text,omitempty"`
	Sigs       []sigInfo `json:"sigs,omitempty"`
	Unverified []sigInfo `json:"unverified,omitempty"`
}

type cosigResult struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	Timestamp uint64 `json:"timestamp,omitempty"`
	Text      string `json:"text,omitempty"`
}

type proofResult struct {
	OK      bool     `json:"ok"`
	Error   string   `json:"error,omitempty"`
	GoProof []string `json:"go_proof_b64"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var req request
	if err := json.Unmarshal(data, &req); err != nil {
		fail(err)
	}
	var out interface{}
	switch req.Mode {
	case "open":
		out, err = openNotes(req)
	case "cosig":
		out, err = cosigNotes(req)
	case "sign":
		out, err = signNote(req)
	case "vkey":
		out, err = makeVkey(req)
	case "tree":
		out, err = treeChecks(req)
	default:
		err = fmt.Errorf("unknown mode %q", req.Mode)
	}
	if err != nil {
		fail(err)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "verify:", err)
	os.Exit(2)
}

func sigInfos(sigs []note.Signature) []sigInfo {
	var out []sigInfo
	for _, s := range sigs {
		out = append(out, sigInfo{s.Name, fmt.Sprintf("%08x", s.Hash)})
	}
	return out
}

func openNotes(req request) (interface{}, error) {
	var vs []note.Verifier
	for _, k := range req.Vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("vkey %q: %v", k, err)
		}
		vs = append(vs, v)
	}
	known := note.VerifierList(vs...)
	var results []openResult
	for _, b := range req.NotesB64 {
		msg, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			return nil, err
		}
		n, err := note.Open(msg, known)
		if err != nil {
			results = append(results, openResult{OK: false, Error: err.Error()})
			continue
		}
		results = append(results, openResult{
			OK: true, Text: n.Text, Sigs: sigInfos(n.Sigs), Unverified: sigInfos(n.UnverifiedSigs),
		})
	}
	return map[string]interface{}{"results": results}, nil
}

// cosigVerifier is a note.Verifier for a timestamped Ed25519 cosignature key
// (c2sp.org/tlog-cosignature): key ID over signature type 0x04, signature =
// 8-byte big-endian timestamp || Ed25519 signature over
// "cosignature/v1\ntime <ts>\n" || note text.
type cosigVerifier struct {
	name      string
	hash      uint32
	key       ed25519.PublicKey
	timestamp uint64
	seen      bool
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	if ts > 1<<63-1 {
		return false
	}
	var m bytes.Buffer
	fmt.Fprintf(&m, "cosignature/v1\ntime %d\n", ts)
	m.Write(msg)
	if !ed25519.Verify(v.key, m.Bytes(), sig[8:]) {
		return false
	}
	v.timestamp = ts
	v.seen = true
	return true
}

func keyHash(name string, typ byte, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write([]byte{typ})
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// parseCosigVkey reads "<name>+<hex id>+<base64(type || key)>" with type 0x01
// (the online key's vkey; its cosigner ID is derived) or 0x04.
func parseCosigVkey(vkey string) (*cosigVerifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed vkey")
	}
	name, id16, key64 := parts[0], parts[1], parts[2]
	id, err := strconv.ParseUint(id16, 16, 32)
	if err != nil || len(id16) != 8 {
		return nil, errors.New("malformed vkey id")
	}
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize {
		return nil, errors.New("malformed vkey key")
	}
	typ, key := raw[0], raw[1:]
	if uint32(id) != keyHash(name, typ, key) {
		return nil, errors.New("vkey id mismatch")
	}
	if typ != 0x01 && typ != 0x04 {
		return nil, fmt.Errorf("vkey type %#x", typ)
	}
	return &cosigVerifier{name: name, hash: keyHash(name, 0x04, key), key: ed25519.PublicKey(key)}, nil
}

func cosigNotes(req request) (interface{}, error) {
	var results []cosigResult
	for _, b := range req.NotesB64 {
		msg, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			return nil, err
		}
		v, err := parseCosigVkey(req.Vkey)
		if err != nil {
			return nil, err
		}
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil {
			results = append(results, cosigResult{OK: false, Error: err.Error()})
			continue
		}
		results = append(results, cosigResult{OK: v.seen, Timestamp: v.timestamp, Text: n.Text})
	}
	return map[string]interface{}{"results": results}, nil
}

func signNote(req request) (interface{}, error) {
	s, err := note.NewSigner(req.Skey)
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: req.Text}, s)
	if err != nil {
		return nil, err
	}
	return map[string]string{"note": string(msg)}, nil
}

func makeVkey(req request) (interface{}, error) {
	key, err := base64.StdEncoding.DecodeString(req.PublicKeyB64)
	if err != nil {
		return nil, err
	}
	vkey, err := note.NewEd25519VerifierKey(req.Name, ed25519.PublicKey(key))
	if err != nil {
		return nil, err
	}
	return map[string]string{"vkey": vkey}, nil
}

type memStore []tlog.Hash

func (m *memStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*m)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

func decodeHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != tlog.HashSize {
		return h, fmt.Errorf("bad hash %q", s)
	}
	copy(h[:], raw)
	return h, nil
}

func decodeHashes(list []string) ([]tlog.Hash, error) {
	out := []tlog.Hash{}
	for _, s := range list {
		h, err := decodeHash(s)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func encodeHashes(list []tlog.Hash) []string {
	out := []string{}
	for _, h := range list {
		out = append(out, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out
}

func treeChecks(req request) (interface{}, error) {
	store := &memStore{}
	for i, b := range req.LeavesB64 {
		leaf, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			return nil, err
		}
		hashes, err := tlog.StoredHashes(int64(i), leaf, store)
		if err != nil {
			return nil, err
		}
		*store = append(*store, hashes...)
	}
	n := int64(len(req.LeavesB64))
	// roots[i] is the tree hash of size i+1 (tlog.TreeHash(0) is all zeros,
	// not RFC 6962's SHA-256 of the empty string, so size 0 is left out).
	var roots []tlog.Hash
	for size := int64(1); size <= n; size++ {
		h, err := tlog.TreeHash(size, store)
		if err != nil {
			return nil, err
		}
		roots = append(roots, h)
	}

	var inclusion []proofResult
	for _, c := range req.Inclusion {
		res := proofResult{GoProof: []string{}}
		if c.Size <= n && c.Index < c.Size {
			if p, err := tlog.ProveRecord(c.Size, c.Index, store); err == nil {
				res.GoProof = encodeHashes(p)
			}
		}
		proof, err1 := decodeHashes(c.ProofB64)
		root, err2 := decodeHash(c.RootB64)
		leaf, err3 := decodeHash(c.LeafB64)
		if err := firstErr(err1, err2, err3); err != nil {
			res.Error = err.Error()
		} else if err := tlog.CheckRecord(proof, c.Size, root, c.Index, leaf); err != nil {
			res.Error = err.Error()
		} else {
			res.OK = true
		}
		inclusion = append(inclusion, res)
	}

	var consistency []proofResult
	for _, c := range req.Consistency {
		res := proofResult{GoProof: []string{}}
		if c.To <= n && c.From >= 1 && c.From <= c.To {
			if p, err := tlog.ProveTree(c.To, c.From, store); err == nil {
				res.GoProof = encodeHashes(p)
			}
		}
		proof, err1 := decodeHashes(c.ProofB64)
		oldRoot, err2 := decodeHash(c.OldB64)
		newRoot, err3 := decodeHash(c.NewB64)
		if err := firstErr(err1, err2, err3); err != nil {
			res.Error = err.Error()
		} else if err := tlog.CheckTree(proof, c.To, newRoot, c.From, oldRoot); err != nil {
			res.Error = err.Error()
		} else {
			res.OK = true
		}
		consistency = append(consistency, res)
	}

	return map[string]interface{}{
		"stored_hashes_b64": encodeHashes(*store),
		"roots_b64":         encodeHashes(roots),
		"inclusion":         inclusion,
		"consistency":       consistency,
	}, nil
}
