"""The Airflow UI side of the provider: the per-video moment digest a parse writes, and the plugin showing it.

:mod:`~airflow_provider_video_actions.ui.digest` is plain Python (the parse imports it on every Airflow line);
:mod:`~airflow_provider_video_actions.ui.plugin` registers the task-instance tab on Airflow 3.1 and later only.
"""
