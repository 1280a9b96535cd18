package dicomweb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/engine/dicom"
)

// store keeps received instances in JetStream: the Part 10 bytes in an object store bucket,
// and in a key-value bucket beside it an index that answers QIDO-RS, WADO-RS metadata and the
// completion tracker without reading pixels back:
//
//	i.<study>.<series>.<sop>  instanceRecord: the instance's DICOM JSON metadata (no bulk data)
//	s.<study>                 studyRecord: study-level attributes and counts
//	o.<study>                 open study: the time its last instance arrived (RFC 3339)
//
// UIDs hold only digits and dots, so in keys their dots become underscores and the key's own
// dots stay token separators that filters can match. Both buckets expire entries after the
// retention time.
type store struct {
	obj jetstream.ObjectStore
	kv  jetstream.KeyValue
}

// Key prefixes of the index bucket.
const (
	keyInstance = "i."
	keyStudy    = "s."
	keyOpen     = "o."
)

func keyUID(uid string) string { return strings.ReplaceAll(uid, ".", "_") }
func uidOfKey(k string) string { return strings.ReplaceAll(k, "_", ".") }

func instanceKey(study, series, sop string) string {
	return keyInstance + keyUID(study) + "." + keyUID(series) + "." + keyUID(sop)
}

func objectName(study, series, sop string) string { return study + "/" + series + "/" + sop }

// openStore creates (or binds to) the buckets. The object store's TTL is the retention; the
// index lives as long.
func openStore(ctx context.Context, js jetstream.JetStream, bucket string, retention time.Duration) (*store, error) {
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "DICOM instances received by STOW-RS",
		TTL:         retention,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("dicomweb: object store %s: %w", bucket, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket + "-index",
		Description: "index of the DICOM instances in " + bucket,
		TTL:         retention,
		Storage:     jetstream.FileStorage,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("dicomweb: index %s-index: %w", bucket, err)
	}
	return &store{obj: obj, kv: kv}, nil
}

// instanceRecord is the index entry of one stored instance.
type instanceRecord struct {
	Study          string `json:"study"`
	Series         string `json:"series"`
	SOP            string `json:"sop"`
	SOPClass       string `json:"sop_class"`
	TransferSyntax string `json:"transfer_syntax"`
	Size           int    `json:"size"`
	// PixelOffset and FrameSize locate native (uncompressed) frames in the Part 10 bytes, so
	// frames are cut out without parsing the instance again; 0 when unknown or compressed.
	PixelOffset int               `json:"pixel_offset,omitempty"`
	FrameSize   int               `json:"frame_size,omitempty"`
	Frames      int               `json:"frames,omitempty"`
	Stored      time.Time         `json:"stored"`
	Meta        dicom.JSONDataset `json:"meta"` // without File Meta and bulk data
}

// studyRecord is the index entry of one study: the attributes QIDO-RS answers at the study
// level, from its first instance, plus counts.
type studyRecord struct {
	Study      string            `json:"study"`
	Attrs      dicom.JSONDataset `json:"attrs"`
	Modalities []string          `json:"modalities"`
	Series     []string          `json:"series"`
	Instances  int               `json:"instances"`
	FirstSeen  time.Time         `json:"first_seen"`
	LastSeen   time.Time         `json:"last_seen"`
	RemoteAddr string            `json:"remote_addr,omitempty"`
	Notified   time.Time         `json:"notified,omitzero"`
}

// studyTags are the study-level attributes kept in a studyRecord.
var studyTags = []tag.Tag{
	tag.StudyDate, tag.StudyTime, tag.AccessionNumber, tag.ReferringPhysicianName, tag.StudyDescription,
	tag.PatientName, tag.PatientID, tag.PatientBirthDate, tag.PatientSex, tag.StudyInstanceUID, tag.StudyID,
}

// has reports whether the instance is already stored.
func (s *store) has(ctx context.Context, study, series, sop string) (bool, error) {
	_, err := s.kv.Get(ctx, instanceKey(study, series, sop))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, err
}

// put stores one instance and its index entry. The object goes first: an index entry always
// points at bytes that exist.
func (s *store) put(ctx context.Context, rec *instanceRecord, data []byte) error {
	name := objectName(rec.Study, rec.Series, rec.SOP)
	if _, err := s.obj.PutBytes(ctx, name, data); err != nil {
		return fmt.Errorf("dicomweb: store %s: %w", rec.SOP, err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("dicomweb: index %s: %w", rec.SOP, err)
	}
	if _, err := s.kv.Put(ctx, instanceKey(rec.Study, rec.Series, rec.SOP), b); err != nil {
		return fmt.Errorf("dicomweb: index %s: %w", rec.SOP, err)
	}
	return nil
}

// touchStudy folds newly stored instances into the study's record and marks the study open
// (last seen now). It retries on a concurrent update: STOW-RS requests for one study may run
// in parallel.
func (s *store) touchStudy(ctx context.Context, study string, added []*instanceRecord, remote string, now time.Time) error {
	key := keyStudy + keyUID(study)
	for attempt := 0; ; attempt++ {
		var rec studyRecord
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return fmt.Errorf("dicomweb: study record %s: %w", study, err)
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
			rec = studyRecord{Study: study, FirstSeen: now, Attrs: dicom.JSONDataset{}}
		default:
			return fmt.Errorf("dicomweb: study record %s: %w", study, err)
		}
		for _, in := range added {
			if len(rec.Attrs) <= 1 {
				for _, t := range studyTags {
					if a := in.Meta[dicom.TagKey(t)]; a != nil {
						rec.Attrs[dicom.TagKey(t)] = a
					}
				}
			}
			if m := in.Meta.String(tag.Modality); m != "" && !slices.Contains(rec.Modalities, m) {
				rec.Modalities = append(rec.Modalities, m)
				slices.Sort(rec.Modalities)
			}
			if !slices.Contains(rec.Series, in.Series) {
				rec.Series = append(rec.Series, in.Series)
			}
		}
		rec.Instances += len(added)
		rec.LastSeen = now
		if remote != "" {
			rec.RemoteAddr = remote
		}
		b, err := json.Marshal(&rec)
		if err != nil {
			return fmt.Errorf("dicomweb: study record %s: %w", study, err)
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			break
		}
		if attempt >= 50 || ctx.Err() != nil {
			return fmt.Errorf("dicomweb: study record %s: %w", study, err)
		}
	}
	if _, err := s.kv.Put(ctx, keyOpen+keyUID(study), []byte(now.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("dicomweb: mark study %s open: %w", study, err)
	}
	return nil
}

// study returns a study's record, or nil when Osprey holds no such study.
func (s *store) study(ctx context.Context, study string) (*studyRecord, error) {
	e, err := s.kv.Get(ctx, keyStudy+keyUID(study))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dicomweb: study %s: %w", study, err)
	}
	var rec studyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("dicomweb: study %s: %w", study, err)
	}
	return &rec, nil
}

// studies returns every study record.
func (s *store) studies(ctx context.Context) ([]*studyRecord, error) {
	keys, err := s.keys(ctx, keyStudy+">")
	if err != nil {
		return nil, err
	}
	out := make([]*studyRecord, 0, len(keys))
	for _, k := range keys {
		r, err := s.study(ctx, uidOfKey(strings.TrimPrefix(k, keyStudy)))
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *store) keys(ctx context.Context, filter string) ([]string, error) {
	l, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("dicomweb: list %s: %w", filter, err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// instances returns the index entries of a study, or of one series of it when series is not
// empty, ordered by series number and instance number.
func (s *store) instances(ctx context.Context, study, series string) ([]*instanceRecord, error) {
	filter := keyInstance + keyUID(study) + ".>"
	if series != "" {
		filter = keyInstance + keyUID(study) + "." + keyUID(series) + ".*"
	}
	keys, err := s.keys(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := make([]*instanceRecord, 0, len(keys))
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired between list and get
		}
		if err != nil {
			return nil, fmt.Errorf("dicomweb: index %s: %w", k, err)
		}
		var rec instanceRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return nil, fmt.Errorf("dicomweb: index %s: %w", k, err)
		}
		out = append(out, &rec)
	}
	slices.SortFunc(out, func(a, b *instanceRecord) int {
		if c := atoi(a.Meta.String(tag.SeriesNumber)) - atoi(b.Meta.String(tag.SeriesNumber)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Series, b.Series); c != 0 {
			return c
		}
		if c := atoi(a.Meta.String(tag.InstanceNumber)) - atoi(b.Meta.String(tag.InstanceNumber)); c != 0 {
			return c
		}
		return strings.Compare(a.SOP, b.SOP)
	})
	return out, nil
}

// instance returns one index entry, or nil.
func (s *store) instance(ctx context.Context, study, series, sop string) (*instanceRecord, error) {
	e, err := s.kv.Get(ctx, instanceKey(study, series, sop))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dicomweb: index %s: %w", sop, err)
	}
	var rec instanceRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("dicomweb: index %s: %w", sop, err)
	}
	return &rec, nil
}

// open returns the studies still waiting for their quiet period: study UID to the time its
// last instance arrived, and the revision of that mark.
func (s *store) open(ctx context.Context) (map[string]openMark, error) {
	keys, err := s.keys(ctx, keyOpen+">")
	if err != nil {
		return nil, err
	}
	out := map[string]openMark{}
	for _, k := range keys {
		m, err := s.openMark(ctx, uidOfKey(strings.TrimPrefix(k, keyOpen)))
		if err != nil {
			return nil, err
		}
		if m.Revision != 0 {
			out[uidOfKey(strings.TrimPrefix(k, keyOpen))] = m
		}
	}
	return out, nil
}

type openMark struct {
	LastSeen time.Time
	Revision uint64
}

func (s *store) openMark(ctx context.Context, study string) (openMark, error) {
	e, err := s.kv.Get(ctx, keyOpen+keyUID(study))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return openMark{}, nil
	}
	if err != nil {
		return openMark{}, fmt.Errorf("dicomweb: open mark %s: %w", study, err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return openMark{}, fmt.Errorf("dicomweb: open mark %s: %w", study, err)
	}
	return openMark{LastSeen: t, Revision: e.Revision()}, nil
}

// close marks a study done, unless an instance arrived after the mark at rev was read: then
// the study stays open and is announced again after its next quiet period. It reports whether
// the study was closed.
func (s *store) close(ctx context.Context, study string, rev uint64, now time.Time) (bool, error) {
	err := s.kv.Delete(ctx, keyOpen+keyUID(study), jetstream.LastRevision(rev))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("dicomweb: close study %s: %w", study, err)
	}
	// The notified time is informational (QIDO and operators); losing a race here is harmless.
	if rec, err := s.study(ctx, study); err == nil && rec != nil {
		rec.Notified = now
		if b, err := json.Marshal(rec); err == nil {
			_, _ = s.kv.Put(ctx, keyStudy+keyUID(study), b)
		}
	}
	return true, nil
}

// object opens the Part 10 bytes of an instance.
func (s *store) object(ctx context.Context, rec *instanceRecord) (io.ReadCloser, error) {
	r, err := s.obj.Get(ctx, objectName(rec.Study, rec.Series, rec.SOP))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: read %s: %w", rec.SOP, err)
	}
	return r, nil
}

func (s *store) objectBytes(ctx context.Context, rec *instanceRecord) ([]byte, error) {
	b, err := s.obj.GetBytes(ctx, objectName(rec.Study, rec.Series, rec.SOP))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: read %s: %w", rec.SOP, err)
	}
	return b, nil
}
