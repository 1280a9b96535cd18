package sr_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The validators are Debian packages: dicom3tools (dciodvfy), dcmtk (dsrdump) and
// pixelmed-apps (the PixelMed jar with DicomSRValidator, run by a Java runtime). CI installs
// them and sets OSPREY_TEST_REQUIRE_SERVICES=1, so there a missing tool fails instead of
// skipping.

func missing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg + "; OSPREY_TEST_REQUIRE_SERVICES=1 requires it")
	}
	t.Skip(msg)
}

func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" not found on PATH (apt-get install "+pkg+")")
	}
	return p
}

// pixelmedJar returns the PixelMed jar: $OSPREY_PIXELMED_JAR, else Debian's.
func pixelmedJar(t *testing.T) string {
	t.Helper()
	jar := os.Getenv("OSPREY_PIXELMED_JAR")
	if jar == "" {
		jar = "/usr/share/java/pixelmed.jar"
	}
	if _, err := os.Stat(jar); err != nil {
		missing(t, "PixelMed jar "+jar+" not found (apt-get install pixelmed-apps, or set OSPREY_PIXELMED_JAR)")
	}
	return jar
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines returns the lines of out that contain any of the words.
func lines(out []byte, words ...string) []string {
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				got = append(got, strings.TrimSpace(l))
				break
			}
		}
	}
	return got
}

// runDciodvfy returns dciodvfy's error and warning lines for a file.
func runDciodvfy(t *testing.T, path string) (errs, warns []string) {
	t.Helper()
	bin := tool(t, "dciodvfy", "dicom3tools")
	out, err := exec.Command(bin, path).CombinedOutput()
	errs = lines(out, "Error")
	if err != nil && len(errs) == 0 {
		errs = append(errs, "dciodvfy: "+err.Error()+": "+string(out))
	}
	return errs, lines(out, "Warning")
}

// runDsrdump returns dsrdump's tree of a file, with codes and template ids.
func runDsrdump(t *testing.T, path string) string {
	t.Helper()
	bin := tool(t, "dsrdump", "dcmtk")
	out, err := exec.Command(bin, "+Pc", "+Pt", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dsrdump %s: %v\n%s", filepath.Base(path), err, out)
	}
	return string(out)
}

// runPixelmed runs PixelMed's DicomSRValidator, which exits 0 whatever it finds, and returns
// its output.
func runPixelmed(t *testing.T, path string) string {
	t.Helper()
	java := tool(t, "java", "default-jre-headless")
	jar := pixelmedJar(t)
	out, err := exec.Command(java,
		"-Djdk.xml.xpathExprOpLimit=0", "-Djdk.xml.xpathExprGrpLimit=0", "-Djdk.xml.xpathTotalOpLimit=0",
		"-cp", jar, "com.pixelmed.validate.DicomSRValidator", path).CombinedOutput()
	if err != nil {
		t.Fatalf("DicomSRValidator %s: %v\n%s", filepath.Base(path), err, out)
	}
	return string(out)
}
