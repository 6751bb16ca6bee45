import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "net"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))
