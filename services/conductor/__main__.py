from jobline.runtime.lifecycle import service_main

from .service import SERVICE, run
from .settings import ConductorSettings


def main() -> None:
    service_main(SERVICE, ConductorSettings.from_env, run)


if __name__ == "__main__":
    main()
