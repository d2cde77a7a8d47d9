"""The data contract and getting data in: :mod:`~hipstats.data.schema` (tables, columns,
ranges), :mod:`~hipstats.data.normalize` (labels people type), :mod:`~hipstats.data.problems`
(the problems readers and rules report), :mod:`~hipstats.data.readers` (folders, files, REDCap,
SQL) and :mod:`~hipstats.data.validation` (the rules, all problems at once).

Examples
--------
>>> from hipstats.data import schema
>>> schema.MEASURES["hip_ir_deg"].unit
'deg'
"""
