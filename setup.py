"""pegasus-py: a Python re-implementation of Apache Pegasus that speaks its wire protocol."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements():
    with open(os.path.join(HERE, "requirements.txt")) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


setup(
    name="pegasus-py",
    version="0.1.0",
    description="Apache Pegasus compatible distributed key-value store in Python",
    packages=find_packages(exclude=["tests", "tests.*"]),
    python_requires=">=3.9",
    install_requires=_requirements(),
    entry_points={
        "console_scripts": [
            "pegasus_server=pegasus_server.__main__:main",
            "pegasus_shell=pegasus_shell.__main__:main",
        ]
    },
)
