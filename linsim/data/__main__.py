"""``python -m linsim.data`` prints the path of the shipped Li, Efros & Pathak spectra (for ``linsim metrics``)."""
from linsim.data import li2022_file

print(li2022_file())
