import subprocess
import sys


def test_make_demo_ends_with_the_same_history_on_both_machines(tmp_path):
    done = subprocess.run([sys.executable, "-m", "localfirst.demo"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Both machines hold the same 3 responses: yes" in done.stdout
    assert "1 request." in done.stdout  # the last sync had nothing new: one request
    assert "Why SQLite" in done.stdout  # a rename made on one machine shows on the other
