from jobline.runtime.lifecycle import service_main

from .service import SERVICE, run
from .settings import HistorySettings


def main() -> None:
    service_main(SERVICE, HistorySettings.from_env, run)


if __name__ == "__main__":
    main()
