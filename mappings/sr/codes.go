package sr

import (
	"strings"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// Codes of the templates the report follows (PS3.16: TID 1500, 1501, 1410, 1411, 1204,
// 1001, 1002, 1004, 1600, 4108, 4019; CID 29, 100, 241, 244, 5000, 6048, 7005).
var (
	codeReport            = dicom.Code{Value: "126000", Scheme: "DCM", Meaning: "Imaging Measurement Report"}
	codeLanguage          = dicom.Code{Value: "121049", Scheme: "DCM", Meaning: "Language of Content Item and Descendants"}
	codeObserverType      = dicom.Code{Value: "121005", Scheme: "DCM", Meaning: "Observer Type"}
	codeDevice            = dicom.Code{Value: "121007", Scheme: "DCM", Meaning: "Device"}
	codeDeviceUID         = dicom.Code{Value: "121012", Scheme: "DCM", Meaning: "Device Observer UID"}
	codeDeviceName        = dicom.Code{Value: "121013", Scheme: "DCM", Meaning: "Device Observer Name"}
	codeDeviceMaker       = dicom.Code{Value: "121014", Scheme: "DCM", Meaning: "Device Observer Manufacturer"}
	codeDeviceModel       = dicom.Code{Value: "121015", Scheme: "DCM", Meaning: "Device Observer Model Name"}
	codeProcedureReported = dicom.Code{Value: "121058", Scheme: "DCM", Meaning: "Procedure reported"}
	codeImagingProcedure  = dicom.Code{Value: "363679005", Scheme: "SCT", Meaning: "Imaging procedure"}
	codeImageLibrary      = dicom.Code{Value: "111028", Scheme: "DCM", Meaning: "Image Library"}
	codeImageLibraryGroup = dicom.Code{Value: "126200", Scheme: "DCM", Meaning: "Image Library Group"}
	codeModality          = dicom.Code{Value: "121139", Scheme: "DCM", Meaning: "Modality"}
	codeStudyDate         = dicom.Code{Value: "111060", Scheme: "DCM", Meaning: "Study Date"}
	codeImagingMeasures   = dicom.Code{Value: "126010", Scheme: "DCM", Meaning: "Imaging Measurements"}
	codeMeasurementGroup  = dicom.Code{Value: "125007", Scheme: "DCM", Meaning: "Measurement Group"}
	codeTrackingID        = dicom.Code{Value: "112039", Scheme: "DCM", Meaning: "Tracking Identifier"}
	codeTrackingUID       = dicom.Code{Value: "112040", Scheme: "DCM", Meaning: "Tracking Unique Identifier"}
	codeFinding           = dicom.Code{Value: "121071", Scheme: "DCM", Meaning: "Finding"}
	codeFindingSite       = dicom.Code{Value: "363698007", Scheme: "SCT", Meaning: "Finding Site"}
	codeLaterality        = dicom.Code{Value: "272741003", Scheme: "SCT", Meaning: "Laterality"}
	codeAlgorithmName     = dicom.Code{Value: "111001", Scheme: "DCM", Meaning: "Algorithm Name"}
	codeAlgorithmVersion  = dicom.Code{Value: "111003", Scheme: "DCM", Meaning: "Algorithm Version"}
	codePresence          = dicom.Code{Value: "705057003", Scheme: "SCT", Meaning: "Presence"}
	codePresent           = dicom.Code{Value: "52101004", Scheme: "SCT", Meaning: "Present"}
	codeAbsent            = dicom.Code{Value: "272519000", Scheme: "SCT", Meaning: "Absent"}
	codeCertainty         = dicom.Code{Value: "111012", Scheme: "DCM", Meaning: "Certainty of Finding"}
	codePercent           = dicom.Code{Value: "%", Scheme: "UCUM", Meaning: "Percent"}
	codeSource            = dicom.Code{Value: "260753009", Scheme: "SCT", Meaning: "Source"}
	codeImageRegion       = dicom.Code{Value: "111030", Scheme: "DCM", Meaning: "Image Region"}
	codeSourceForSeg      = dicom.Code{Value: "121233", Scheme: "DCM", Meaning: "Source Image for Segmentation"}
	codeProcessingEquip   = dicom.Code{Value: "109102", Scheme: "DCM", Meaning: "Processing Equipment"}
)

var lateralities = map[string]dicom.Code{
	protocol.LateralityLeft:      {Value: "7771000", Scheme: "SCT", Meaning: "Left"},
	protocol.LateralityRight:     {Value: "24028007", Scheme: "SCT", Meaning: "Right"},
	protocol.LateralityBilateral: {Value: "51440002", Scheme: "SCT", Meaning: "Right and left"},
}

// modalityProcedures are the CID 100 procedures of one modality, body region unspecified.
var modalityProcedures = map[string]dicom.Code{
	"CT": {Value: "25045-6", Scheme: "LN", Meaning: "CT unspecified body region"},
	"MR": {Value: "25056-3", Scheme: "LN", Meaning: "MRI unspecified body region"},
	"NM": {Value: "49118-3", Scheme: "LN", Meaning: "NM unspecified body region"},
	"PT": {Value: "44136-0", Scheme: "LN", Meaning: "PET unspecified body region"},
}

// languages holds the CID 5000 meanings of the common languages; another tag is written with
// itself as its meaning.
var languages = map[string]string{
	"en": "English", "en-US": "English (United States)", "en-GB": "English (United Kingdom)",
	"en-AU": "English (Australia)", "en-CA": "English (Canada)", "de": "German",
	"de-DE": "German (Germany)", "fr": "French", "fr-FR": "French (France)",
	"nl-NL": "Dutch (Netherlands)", "da-DK": "Danish (Denmark)", "fi-FI": "Finnish (Finland)",
	"it-IT": "Italian (Italy)", "ja-JP": "Japanese (Japan)", "pt-BR": "Portuguese (Brazil)",
	"nb-NO": "Norwegian (Bokmål) (Norway)", "zh-CN": "Chinese (S)",
}

// modalities holds the CID 29 meanings of the acquisition modalities Osprey sees.
var modalities = map[string]string{
	"CR": "Computed Radiography", "CT": "Computed Tomography", "DX": "Digital Radiography",
	"IO": "Intra-oral Radiography", "MR": "Magnetic Resonance", "MG": "Mammography",
	"NM": "Nuclear Medicine", "PX": "Panoramic X-Ray", "PT": "Positron emission tomography",
	"RF": "Radiofluoroscopy", "SM": "Slide Microscopy", "US": "Ultrasound",
	"XA": "X-Ray Angiography",
}

// units holds the UCUM meanings of the units plugins send most; another unit is written
// with its UCUM code as its meaning, which is what UCUM's own print form would be.
var units = map[string]string{
	"mL": "milliliter", "ml": "milliliter", "L": "liter", "mm": "millimeter", "cm": "centimeter",
	"mm2": "square millimeter", "cm2": "square centimeter", "mm3": "cubic millimeter",
	"cm3": "cubic centimeter", "[hnsf'U]": "Hounsfield unit", "%": "Percent", "1": "no units",
	"{ratio}": "ratio", "deg": "degree", "s": "second", "ms": "millisecond",
}

// measurementNames are the measurement concepts a plugin may name without a code.
var measurementNames = map[string]dicom.Code{
	"volume":   {Value: "118565006", Scheme: "SCT", Meaning: "Volume"},
	"diameter": {Value: "81827009", Scheme: "SCT", Meaning: "Diameter"},
	"length":   {Value: "410668003", Scheme: "SCT", Meaning: "Length"},
	"area":     {Value: "42798000", Scheme: "SCT", Meaning: "Area"},
}

// LocalScheme is the coding scheme designator of the measurement concepts Osprey coins for
// measurements a plugin names without a code and that have no standard code here (a "99"
// scheme is private by PS3.16 8.2). Such a concept's value is its name, upper case, with
// runs of other characters as "-" ("midline shift" is MIDLINE-SHIFT).
const LocalScheme = "99OSPREY"

// schemes maps the FHIR system URIs of the protocol to DICOM coding scheme designators.
var schemes = map[string]string{
	protocol.SystemSNOMED:                  "SCT",
	protocol.SystemLOINC:                   "LN",
	protocol.SystemRadLex:                  "RADLEX",
	protocol.SystemDCM:                     "DCM",
	protocol.SystemUCUM:                    "UCUM",
	"http://www.nlm.nih.gov/research/umls": "UMLS",
	"http://hl7.org/fhir/sid/icd-10":       "I10",
}

// designator returns the DICOM coding scheme designator of a FHIR system URI. A system that
// is already a designator (no ':' and at most 16 characters, "SCT" say) is kept.
func designator(system string) (string, bool) {
	if d, ok := schemes[system]; ok {
		return d, true
	}
	if system != "" && len(system) <= 16 && !strings.ContainsAny(system, ":/") {
		return system, true
	}
	return "", false
}

func localValue(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToUpper(strings.TrimSpace(name)) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	s := b.String()
	if len(s) > 16 {
		s = strings.TrimRight(s[:16], "-")
	}
	return s
}
