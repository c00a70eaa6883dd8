from jobline.runtime.lifecycle import service_main

from .service import SERVICE, run
from .settings import LogsinkSettings


def main() -> None:
    service_main(SERVICE, LogsinkSettings.from_env, run)


if __name__ == "__main__":
    main()
