from jobline.runtime.lifecycle import service_main

from .app import SERVICE
from .service import run_as_process
from .settings import GatewaySettings


def main() -> None:
    service_main(SERVICE, GatewaySettings.from_env, run_as_process)


if __name__ == "__main__":
    main()
