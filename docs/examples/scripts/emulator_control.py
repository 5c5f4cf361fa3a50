"""Steer a running emulator from another process: hold a DAG's jobs, read its counters, let them go.

Run with ``VIDEO_ACTIONS_EMULATOR_CONTROL`` and ``VIDEO_ACTIONS_EMULATOR_TOKEN`` set (the emulator's ``--env-file``
exports both).
"""

# [START control]
from airflow_provider_video_actions.emulator.control import EmulatorControl

control = EmulatorControl()  # $VIDEO_ACTIONS_EMULATOR_CONTROL and its token
# Jobs named video_actions_quickstart.predict or video_actions_quickstart.predict.<run id> (the default display
# name) stay PAUSED once they have run, until released.
control.hold("video_actions_quickstart.predict")
print(control.state()["calls"])  # JobService calls so far, by method
control.release("video_actions_quickstart.predict")
# [END control]
