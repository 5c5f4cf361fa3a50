"""Model families, each in one module or subpackage; :mod:`.dispatch` picks one for a model or an output line.

A family owns its request lines, its answer decoding into the shared records
(:mod:`airflow_provider_video_actions.predictions`) and its part of the job summary. Adding a family
means a module here (a :class:`~.base.ModelFamily`) and one entry in :data:`.dispatch.FAMILIES`.
"""
