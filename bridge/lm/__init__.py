"""Language models: base-model loading and model directories (``loading``), the method table of full / LoRA / adapter
tuning (``methods``), the bottleneck adapter module (``adapter``) and the news analyzer with its ONNX backend
(``analyzer``)."""
