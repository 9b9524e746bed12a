//go:build integration

package packagetest_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
)

// rpmPackage is what the test reads from an .rpm's header: enough to check
// the package without the rpm tool, which Debian machines do not have.
type rpmPackage struct {
	Name, Version, Release, Arch string
	Files                        map[string]rpmFile
	// Scripts by scriptlet: "pre", "post", "preun", "postun".
	Scripts map[string]string
}

type rpmFile struct {
	Mode  uint16 // st_mode: type and permission bits
	Flags uint32 // RPMFILE_* bits
	User  string
	Group string
}

// RPMFILE_* flags (rpm's lib/rpmfiles.h).
const (
	rpmFileConfig    = 1 << 0
	rpmFileNoReplace = 1 << 4
)

// Header tags (rpm's include/rpm/rpmtag.h).
const (
	tagName          = 1000
	tagVersion       = 1001
	tagRelease       = 1002
	tagArch          = 1022
	tagPreIn         = 1023
	tagPostIn        = 1024
	tagPreUn         = 1025
	tagPostUn        = 1026
	tagFileModes     = 1030
	tagFileFlags     = 1037
	tagFileUserName  = 1039
	tagFileGroupName = 1040
	tagDirIndexes    = 1116
	tagBaseNames     = 1117
	tagDirNames      = 1118
)

// Header data types.
const (
	typeInt16       = 3
	typeInt32       = 4
	typeString      = 6
	typeStringArray = 8
	typeI18NString  = 9
)

var (
	rpmLeadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	rpmHeaderMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

// readRPM reads the lead, skips the signature header and decodes the main
// header of the .rpm at file.
func readRPM(file string) (*rpmPackage, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	lead := make([]byte, 96)
	if _, err := io.ReadFull(f, lead); err != nil {
		return nil, fmt.Errorf("rpm lead: %w", err)
	}
	if !bytes.Equal(lead[:4], rpmLeadMagic) {
		return nil, fmt.Errorf("rpm lead: magic % x, want % x", lead[:4], rpmLeadMagic)
	}
	sig, err := readRPMHeader(f)
	if err != nil {
		return nil, fmt.Errorf("rpm signature header: %w", err)
	}
	// The signature header is padded to a multiple of 8 bytes.
	if pad := (8 - sig.size%8) % 8; pad > 0 {
		if _, err := io.CopyN(io.Discard, f, int64(pad)); err != nil {
			return nil, fmt.Errorf("rpm signature padding: %w", err)
		}
	}
	h, err := readRPMHeader(f)
	if err != nil {
		return nil, fmt.Errorf("rpm header: %w", err)
	}

	p := &rpmPackage{Files: map[string]rpmFile{}, Scripts: map[string]string{}}
	for tag, dst := range map[int32]*string{tagName: &p.Name, tagVersion: &p.Version, tagRelease: &p.Release, tagArch: &p.Arch} {
		if *dst, err = h.str(tag); err != nil {
			return nil, err
		}
	}
	for tag, name := range map[int32]string{tagPreIn: "pre", tagPostIn: "post", tagPreUn: "preun", tagPostUn: "postun"} {
		if _, ok := h.entries[tag]; !ok {
			continue
		}
		if p.Scripts[name], err = h.str(tag); err != nil {
			return nil, err
		}
	}

	base, err := h.strs(tagBaseNames)
	if err != nil {
		return nil, err
	}
	dirs, err := h.strs(tagDirNames)
	if err != nil {
		return nil, err
	}
	idx, err := h.ints(tagDirIndexes)
	if err != nil {
		return nil, err
	}
	modes, err := h.ints(tagFileModes)
	if err != nil {
		return nil, err
	}
	flags, err := h.ints(tagFileFlags)
	if err != nil {
		return nil, err
	}
	users, err := h.strs(tagFileUserName)
	if err != nil {
		return nil, err
	}
	groups, err := h.strs(tagFileGroupName)
	if err != nil {
		return nil, err
	}
	for _, n := range []int{len(idx), len(modes), len(flags), len(users), len(groups)} {
		if n != len(base) {
			return nil, fmt.Errorf("rpm header: %d base names but a file array of %d", len(base), n)
		}
	}
	for i, b := range base {
		if int(idx[i]) >= len(dirs) {
			return nil, fmt.Errorf("rpm header: file %s: dir index %d of %d", b, idx[i], len(dirs))
		}
		p.Files[path.Join(dirs[idx[i]], b)] = rpmFile{Mode: uint16(modes[i]), Flags: uint32(flags[i]), User: users[i], Group: groups[i]}
	}
	return p, nil
}

type rpmEntry struct {
	typ    uint32
	offset int32
	count  uint32
}

type rpmHeader struct {
	entries map[int32]rpmEntry
	store   []byte
	size    int // bytes of the header structure, for the signature padding
}

func readRPMHeader(r io.Reader) (*rpmHeader, error) {
	intro := make([]byte, 16)
	if _, err := io.ReadFull(r, intro); err != nil {
		return nil, err
	}
	if !bytes.Equal(intro[:4], rpmHeaderMagic) {
		return nil, fmt.Errorf("magic % x, want % x", intro[:4], rpmHeaderMagic)
	}
	n := binary.BigEndian.Uint32(intro[8:12])
	size := binary.BigEndian.Uint32(intro[12:16])
	if n > 1<<16 || size > 64<<20 {
		return nil, fmt.Errorf("implausible header: %d entries, %d bytes", n, size)
	}
	index := make([]byte, 16*n)
	if _, err := io.ReadFull(r, index); err != nil {
		return nil, err
	}
	h := &rpmHeader{entries: map[int32]rpmEntry{}, store: make([]byte, size), size: 16 + len(index) + int(size)}
	if _, err := io.ReadFull(r, h.store); err != nil {
		return nil, err
	}
	for i := 0; i < int(n); i++ {
		e := index[16*i : 16*i+16]
		h.entries[int32(binary.BigEndian.Uint32(e[0:4]))] = rpmEntry{
			typ:    binary.BigEndian.Uint32(e[4:8]),
			offset: int32(binary.BigEndian.Uint32(e[8:12])),
			count:  binary.BigEndian.Uint32(e[12:16]),
		}
	}
	return h, nil
}

var errNoTag = errors.New("tag missing")

func (h *rpmHeader) entry(tag int32) (rpmEntry, error) {
	e, ok := h.entries[tag]
	if !ok {
		return e, fmt.Errorf("rpm header tag %d: %w", tag, errNoTag)
	}
	if e.offset < 0 || int(e.offset) > len(h.store) {
		return e, fmt.Errorf("rpm header tag %d: offset %d outside a store of %d bytes", tag, e.offset, len(h.store))
	}
	return e, nil
}

// strs decodes a STRING, STRING_ARRAY or I18NSTRING entry.
func (h *rpmHeader) strs(tag int32) ([]string, error) {
	e, err := h.entry(tag)
	if err != nil {
		return nil, err
	}
	if e.typ != typeString && e.typ != typeStringArray && e.typ != typeI18NString {
		return nil, fmt.Errorf("rpm header tag %d: type %d is not a string", tag, e.typ)
	}
	data := h.store[e.offset:]
	out := make([]string, 0, e.count)
	for i := uint32(0); i < e.count; i++ {
		end := bytes.IndexByte(data, 0)
		if end < 0 {
			return nil, fmt.Errorf("rpm header tag %d: string %d not terminated", tag, i)
		}
		out = append(out, string(data[:end]))
		data = data[end+1:]
	}
	return out, nil
}

func (h *rpmHeader) str(tag int32) (string, error) {
	s, err := h.strs(tag)
	if err != nil {
		return "", err
	}
	if len(s) == 0 {
		return "", fmt.Errorf("rpm header tag %d: empty", tag)
	}
	return s[0], nil
}

// ints decodes an INT16 or INT32 array entry.
func (h *rpmHeader) ints(tag int32) ([]int64, error) {
	e, err := h.entry(tag)
	if err != nil {
		return nil, err
	}
	width := map[uint32]int{typeInt16: 2, typeInt32: 4}[e.typ]
	if width == 0 {
		return nil, fmt.Errorf("rpm header tag %d: type %d is not an integer array", tag, e.typ)
	}
	data := h.store[e.offset:]
	if len(data) < width*int(e.count) {
		return nil, fmt.Errorf("rpm header tag %d: %d values overrun the store", tag, e.count)
	}
	out := make([]int64, e.count)
	for i := range out {
		switch width {
		case 2:
			out[i] = int64(binary.BigEndian.Uint16(data[2*i:]))
		case 4:
			out[i] = int64(binary.BigEndian.Uint32(data[4*i:]))
		}
	}
	return out, nil
}
